"""The subscriber SDK against a real local bus: groups, start positions, types, tail."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from logfactory.bus.base import TopicSpec
from logfactory.bus.local import LocalBus
from logfactory.config import ConfigError, parse_config
from logfactory.event import Event, Header, encode_event, topic_for_type
from logfactory.subscribe import Subscriber, find_config, open_bus, tail


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
    with Subscriber(["BACKUP"], config=config, start="earliest") as sub:
        assert sub.poll(0.0) == []
    assert (tmp_path / "bus" / "bus.sqlite3").is_file()  # opened from node.data_dir


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
    closer = threading.Thread(target=lambda: (first.wait(10), sub.close()))
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
    follow = tail(local_bus, "events.ALERT", start="latest", count=1)
    backlog = next(follow)
    put(local_bus, "ALERT", range(6, 7))
    new = next(follow)
    follow.close()
    assert b"ALERT-6" in new.value and b"ALERT-6" not in backlog.value


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
        assert isinstance(named, KafkaBus) and isinstance(anonymous, KafkaBus)
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
        assert sub.poll(0.1) == [] and sub.repeated == len(again)
    with Subscriber(["ALERT"], bus=local_bus, start="earliest") as sub:
        assert take(sub, 3) == alerts
