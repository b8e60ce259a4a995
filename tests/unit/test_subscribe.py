"""The subscriber SDK against a real local bus: groups, start positions, types, tail, and
readers that never create a bus nor wait for a node that is not running."""

from __future__ import annotations

import json
import os
import queue
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from logfactory import readers
from logfactory.bus import local, open_bus
from logfactory.bus.base import BusError, TopicSpec
from logfactory.bus.local import LocalBus, MissingBusError
from logfactory.config import Config, ConfigError, parse_config
from logfactory.event import Event, Header, encode_event, topic_for_type
from logfactory.readers import LIVE_SNAPSHOT_S, bus_directory, node_running, open_reader
from logfactory.stats import StatsRegistry, StatsWriter
from logfactory.subscribe import NoNodeError, Subscriber, find_config, tail


def put(bus: LocalBus, event_type: str, ids: range, partitions: int = 1) -> list[str]:
    bus.ensure_topic(TopicSpec(topic_for_type(event_type), partitions))
    producer = bus.producer()
    for i in ids:
        event = Event(header=Header(id=f"{event_type}-{i}", time="t", type=event_type))
        producer.produce(topic_for_type(event_type), encode_event(event), f"h{i}".encode())
    producer.flush()
    producer.close()
    return [f"{event_type}-{i}" for i in ids]


def take(sub: Subscriber, n: int, rounds: int = 50) -> list[str]:
    """Ids of exactly the next ``n`` envelopes, polling at most ``rounds`` times."""
    out: list[str] = []
    for _ in range(rounds):
        out += [e["header"]["id"] for e in sub.poll(0.2)]
        if len(out) >= n:
            break
    assert len(out) == n, out
    return out


def iterate(sub: Subscriber, n: int) -> list[str]:
    out = []
    for envelope in sub:
        out.append(envelope["header"]["id"])
        if len(out) == n:
            break
    return out


def test_group_resumes_after_finished_events(local_bus: LocalBus) -> None:
    ids = put(local_bus, "ALERT", range(8))
    with Subscriber(["ALERT"], bus=local_bus, group="pager", start="earliest") as sub:
        assert iterate(sub, 3) == ids[:3]
    # the third event was handed out but the next one never requested: it comes again
    with Subscriber(["ALERT"], bus=local_bus, group="pager", start="earliest") as sub:
        assert iterate(sub, 2) == ids[2:4]
        sub.commit()  # explicit: the event in hand is finished too
    with Subscriber(["ALERT"], bus=local_bus, group="pager", start="latest") as sub:
        assert take(sub, 4) == ids[4:]
    # the last batch was handed out but never followed by another poll: not committed
    assert local_bus.committed("pager", "events.ALERT") == {0: 4}


def test_poll_batches_commit_when_the_next_batch_is_requested(local_bus: LocalBus) -> None:
    ids = put(local_bus, "ALERT", range(3))
    with Subscriber(["ALERT"], bus=local_bus, group="g", start="earliest") as sub:
        assert take(sub, 3) == ids
        assert local_bus.committed("g", "events.ALERT") == {}
        assert sub.poll(0.0) == []
        assert local_bus.committed("g", "events.ALERT") == {0: 3}


def test_latest_sees_only_new_events_and_earliest_sees_all(local_bus: LocalBus) -> None:
    old = put(local_bus, "JOB_STATUS", range(3))
    with Subscriber(["JOB_STATUS"], bus=local_bus, start="latest") as latest:
        assert latest.poll(0.1) == []
        new = put(local_bus, "JOB_STATUS", range(3, 5))
        assert take(latest, 2) == new
    with Subscriber(["JOB_STATUS"], bus=local_bus, start="earliest") as earliest:
        assert take(earliest, 5) == old + new


def test_only_the_chosen_types_arrive(local_bus: LocalBus) -> None:
    put(local_bus, "ALERT", range(3))
    jobs = put(local_bus, "JOB_STATUS", range(2))
    with Subscriber(["JOB_STATUS", "JOB_STATUS"], bus=local_bus, start="earliest") as sub:
        assert take(sub, 2) == jobs
        assert sub.poll(0.1) == []
        assert sub.types == ["JOB_STATUS"]


def test_types_are_checked_against_the_config(tmp_path: Path) -> None:
    config = parse_config(
        f"node: {{data_dir: '{tmp_path}'}}\nevent_types: [{{name: BACKUP}}]\n", "c.yaml"
    )
    with pytest.raises(ValueError, match="unknown event type 'NOPE'; known types: USER_OP"):
        Subscriber(["NOPE"], config=config)
    with pytest.raises(ValueError, match="at least one"):
        Subscriber([" "], config=config)
    LocalBus(tmp_path / "bus").close()  # a node's bus, in node.data_dir
    with Subscriber(["BACKUP"], config=config, start="earliest", wait=True) as sub:
        assert sub.poll(0.0) == []
    with (
        pytest.raises(NoNodeError, match=f"no node is running on {tmp_path / 'bus'}"),
        Subscriber(["BACKUP"], config=config, start="earliest") as sub,
    ):
        sub.poll(0.0)  # read from node.data_dir, where no node runs


def test_non_envelopes_are_skipped_not_fatal(local_bus: LocalBus) -> None:
    local_bus.ensure_topic(TopicSpec("events.ALERT", 1))
    producer = local_bus.producer()
    producer.produce("events.ALERT", b"\xff not json")
    producer.produce("events.ALERT", b'{"header": {"id": "x"}}')
    producer.flush()
    producer.close()
    with Subscriber(["ALERT"], bus=local_bus, group="g", start="earliest") as sub:
        assert iterate(sub, 1) == ["x"]
        assert sub.skipped == 1


def test_close_from_another_thread_ends_iteration(local_bus: LocalBus) -> None:
    put(local_bus, "ALERT", range(1))
    sub = Subscriber(["ALERT"], bus=local_bus, start="earliest", poll_timeout=0.05)
    first = threading.Event()

    def close_after_the_first() -> None:
        first.wait(10)
        sub.close()

    closer = threading.Thread(target=close_after_the_first)
    closer.start()
    seen = []
    for envelope in sub:  # ends by itself once closed: no break
        seen.append(envelope["header"]["id"])
        first.set()
    closer.join()
    assert seen == ["ALERT-0"]
    assert sub.poll() == []


def test_tail_earliest_latest_and_follow(local_bus: LocalBus) -> None:
    put(local_bus, "ALERT", range(6), partitions=2)
    first = [m.offset for m in tail(local_bus, "events.ALERT", count=100, follow=False)]
    assert len(first) == 6
    assert len(list(tail(local_bus, "events.ALERT", count=2, follow=False))) == 2
    last = list(tail(local_bus, "events.ALERT", start="latest", count=3, follow=False))
    assert len(last) == 3
    stamps = [m.timestamp_ms for m in last]
    assert stamps == sorted(stamps)
    assert list(tail(local_bus, "events.ALERT", start="latest", follow=False)) == []


@pytest.mark.timeout(60)  # the old tail followed on after its count: it never ended
def test_tail_latest_with_a_count_ends_after_that_many(local_bus: LocalBus) -> None:
    put(local_bus, "ALERT", range(3))
    stored = [m.value for m in tail(local_bus, "events.ALERT", follow=False)]
    assert [m.value for m in tail(local_bus, "events.ALERT", start="latest", count=2)] == stored[1:]
    follow = tail(local_bus, "events.ALERT", start="latest", count=5)
    backlog = [next(follow) for _ in range(3)]
    put(local_bus, "ALERT", range(3, 5))
    new = list(follow)  # the last 3 stored, then 2 new ones: 5 in all, and it ends
    assert [m.value for m in backlog] == stored
    assert len(new) == 2
    assert [b"ALERT-3" in new[0].value, b"ALERT-4" in new[1].value] == [True, True]


def test_tail_asks_on_idle_when_following_finds_nothing(local_bus: LocalBus) -> None:
    put(local_bus, "ALERT", range(2))

    def gone() -> None:
        raise NoNodeError("no node")

    seen = []

    def follow() -> None:
        for message in tail(local_bus, "events.ALERT", on_idle=gone):
            seen.append(message)

    with pytest.raises(NoNodeError):
        follow()
    assert len(seen) == 2  # everything stored first, then the question


def test_find_config_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOGFACTORY_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="LOGFACTORY_CONFIG"):
        find_config(None)
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "demo.yaml").write_text("node: {name: demo}\n")
    assert find_config(None).node.name == "demo"
    (tmp_path / "site.yaml").write_text("node: {name: site}\n")
    monkeypatch.setenv("LOGFACTORY_CONFIG", str(tmp_path / "site.yaml"))
    assert find_config(None).node.name == "site"
    assert find_config(tmp_path / "examples" / "demo.yaml").node.name == "demo"


def test_kafka_bus_needs_bootstrap_servers() -> None:
    with pytest.raises(ConfigError, match=r"bootstrap\.servers"):
        open_bus(parse_config("bus: {type: kafka}\n"))


def test_a_named_kafka_worker_gets_a_stable_transactional_prefix() -> None:
    from logfactory.bus.kafka import KafkaBus

    text = "node: {name: n1}\nbus: {type: kafka, kafka: {bootstrap.servers: '127.0.0.1:1'}}\n"
    config = parse_config(text)
    named = open_bus(config, worker="factory-3")
    anonymous = open_bus(config)
    try:
        assert isinstance(named, KafkaBus)
        assert isinstance(anonymous, KafkaBus)
        assert named.txn_id("factory") == "n1-factory-3.factory.0"
        assert named.settings.transactional_id == "n1-factory-3"
        assert anonymous.settings.transactional_id is None
    finally:
        named.close()
        anonymous.close()


def test_a_template_announced_twice_is_delivered_once(local_bus: LocalBus) -> None:
    # racing workers announce one template twice under one id; other types are never merged
    first = put(local_bus, "NEW_PATTERN", range(3))
    again = put(local_bus, "NEW_PATTERN", range(1, 2))
    alerts = put(local_bus, "ALERT", range(2)) + put(local_bus, "ALERT", range(1))
    with Subscriber(["NEW_PATTERN"], bus=local_bus, start="earliest") as sub:
        assert take(sub, 3) == first
        assert sub.poll(0.1) == []
        assert sub.repeated == len(again)
    with Subscriber(["ALERT"], bus=local_bus, start="earliest") as sub:
        assert take(sub, 3) == alerts


# -- readers: never create a bus, never wait silently for a node that is not running ---------
def _site(tmp_path: Path) -> Config:
    return parse_config(f"node: {{data_dir: '{tmp_path / 'data'}'}}\n", str(tmp_path / "site.yaml"))


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: the pid no longer runs
    return child.pid


def _node_left(config: Config, pid: int, age: float = 0.0) -> None:
    """A snapshot as a node process leaves it in <data_dir>/stats (see stats.StatsWriter)."""
    stats = config.data_dir / "stats"
    stats.mkdir(parents=True, exist_ok=True)
    snap = {"process": "node", "pid": pid, "started": 0.0, "written": time.time() - age}
    (stats / "node.json").write_text(json.dumps(snap))


def test_a_reader_never_creates_a_bus(tmp_path: Path) -> None:
    config = _site(tmp_path)
    with pytest.raises(NoNodeError) as caught:
        Subscriber(["ALERT"], config=config)
    text, site = str(caught.value), tmp_path / "site.yaml"
    assert f"no bus in {tmp_path / 'data' / 'bus'} (node.data_dir of {site})" in text
    assert f"`logfactory run -c {site}`" in text
    assert "wait=True" in text
    assert not (tmp_path / "data").exists()
    # an empty database (a node creating it this instant) is no bus either, and stays empty
    (tmp_path / "data" / "bus").mkdir(parents=True)
    sqlite3.connect(tmp_path / "data" / "bus" / "bus.sqlite3").close()
    with pytest.raises(NoNodeError, match="no bus in"):
        open_reader(config)
    with sqlite3.connect(tmp_path / "data" / "bus" / "bus.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone() == (0,)


@pytest.mark.parametrize("left", ["nothing", "a dead pid", "a stale snapshot"])
def test_a_running_node_is_a_live_pid_with_a_fresh_snapshot(tmp_path: Path, left: str) -> None:
    config = _site(tmp_path)
    if left == "a dead pid":
        _node_left(config, _dead_pid())
    elif left == "a stale snapshot":  # a live pid, but not the process that wrote it
        _node_left(config, os.getpid(), age=LIVE_SNAPSHOT_S + 1)
    assert not node_running(config)
    (config.data_dir / "stats").mkdir(parents=True, exist_ok=True)
    StatsWriter(StatsRegistry("node"), config.data_dir / "stats").write_now()
    assert node_running(config)


def test_a_stopped_nodes_bus_is_read_to_its_end_then_the_reader_says_so(tmp_path: Path) -> None:
    config = _site(tmp_path)
    bus = LocalBus(bus_directory(config))
    ids = put(bus, "ALERT", range(3))
    bus.close()
    _node_left(config, _dead_pid())  # the node that wrote them has exited
    with Subscriber(["ALERT"], config=config, start="earliest") as sub:
        assert take(sub, 3) == ids  # what is stored can be read
        with pytest.raises(NoNodeError, match=r"no node is running on .*so no new messages can"):
            sub.poll(0.0)  # ... but nothing more can come
    with (
        pytest.raises(NoNodeError, match="or pass wait=True"),
        Subscriber(["ALERT"], config=config, poll_timeout=0.05) as latest,
    ):
        next(iter(latest))  # from the latest: nothing to read at all


def test_a_reader_told_to_wait_waits_for_a_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _site(tmp_path)
    looked = threading.Event()

    class Watched(LocalBus):  # tells the test when the reader found no bus and waits
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            try:
                super().__init__(*args, **kwargs)
            except MissingBusError:
                looked.set()
                raise

    monkeypatch.setattr(local, "LocalBus", Watched)
    got: queue.Queue[object] = queue.Queue()

    def read() -> None:
        try:
            with Subscriber(
                ["ALERT"], config=config, start="earliest", wait=True, poll_timeout=0.05
            ) as sub:
                got.put(next(iter(sub))["header"]["id"])
        except Exception as exc:  # handed to the test thread, which fails on it
            got.put(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert looked.wait(30)
    assert not (tmp_path / "data").exists()
    bus = LocalBus(bus_directory(config))  # a node starts and writes an event
    try:
        ids = put(bus, "ALERT", range(1))
        assert got.get(timeout=30) == ids[0]
    finally:
        bus.close()
    reader.join(timeout=30)


def test_a_kafka_reader_says_when_no_broker_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "KAFKA_PROBE_S", 0.5)
    text = "bus: {type: kafka, kafka: {bootstrap.servers: '127.0.0.1:1'}}\n"
    config = parse_config(text, "k.yaml")
    with pytest.raises(BusError, match=r"no Kafka broker at 127\.0\.0\.1:1 answered .*k\.yaml"):
        open_reader(config)
