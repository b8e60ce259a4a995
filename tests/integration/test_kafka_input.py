"""The Kafka input source against a real broker (the shared single node), into a local bus.

A "site" topic is filled with a plain producer; the source runs in an Agent on a LocalBus.
Offsets are committed to the site's cluster only after our bus is durable, so:
- a clean stop commits everything emitted: a restart reads only new messages (exactly once);
- a crash before the commit re-reads what was emitted since the last commit; at most that
  uncommitted tail is duplicated (here: every message of the crashed run), nothing is lost.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any, cast

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # confluent_kafka.admin does not re-export it in its stubs
from tests.helpers.agent import AgentRunner, Reader, start
from tests.helpers.configs import source_as, source_of
from tests.helpers.waiting import wait_for
from tests.kafka_broker import quiet

from logfactory.bus.local import LocalBus
from logfactory.collect.sources.context import SourceContext
from logfactory.collect.sources.kafka_input import KafkaInputSource
from logfactory.config import Config, KafkaSourceConfig, NodeConfig, source_config
from logfactory.record import Record

pytestmark = pytest.mark.integration

PARTITIONS = 3


@pytest.fixture
def site_topic(kafka_bootstrap: str, kafka_topic: str) -> str:
    admin = AdminClient(quiet({"bootstrap.servers": kafka_bootstrap}))
    admin.create_topics([NewTopic(kafka_topic, PARTITIONS, 1)])[kafka_topic].result(30)
    return kafka_topic


def produce(bootstrap: str, topic: str, start: int, stop: int, extra: int = 0) -> None:
    """Messages ``start .. stop-1`` (JSON with the sender in ``node``), keyed ``hostN``."""
    producer = Producer(quiet({"bootstrap.servers": bootstrap, "acks": "all"}))
    for i in range(start, stop):
        value = json.dumps({"i": i, "node": f"n{i % 4}", "msg": f"event {i}"}).encode()
        producer.produce(topic, value, f"host{i % 5}".encode())
    producer.flush(30)
    assert len(producer) == 0


def config(tmp_path: Path, bootstrap: str, topic: str, **kw: Any) -> Config:
    source = source_config(
        type="kafka", name="site", tag="app", topics=[topic],
        kafka={"bootstrap.servers": bootstrap, "session.timeout.ms": 6000}, **kw,
    )  # fmt: skip
    return Config(node=NodeConfig(data_dir=str(tmp_path / "data")), sources=[source])


def positions(records: list[Record]) -> Counter[tuple[int, int]]:
    return Counter((r.meta["partition"], r.meta["offset"]) for r in records)


def numbers(records: list[Record]) -> Counter[int]:
    return Counter(int(json.loads(r.line)["i"]) for r in records)


def committed(bootstrap: str, group: str, topic: str) -> int:
    """Sum of the group's committed offsets on the site cluster (= messages it has done)."""
    c = Consumer(quiet({"bootstrap.servers": bootstrap, "group.id": group}))
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
        return sum(max(tp.offset, 0) for tp in tps)
    finally:
        c.close()


def test_messages_once_each_and_a_clean_restart_reads_only_new_ones(
    tmp_path: Path, kafka_bootstrap: str, site_topic: str, bus: LocalBus,
    runners: list[AgentRunner],
) -> None:  # fmt: skip
    n = 300
    produce(kafka_bootstrap, site_topic, 0, n)
    cfg = config(tmp_path, kafka_bootstrap, site_topic, host_from="field:node")
    reader = Reader(bus)
    first = start(runners, cfg, bus)
    reader.wait_count(n, timeout=30)
    # caught up: the end offsets of the last fetch minus the next offsets is 0 everywhere (an
    # off-by-one would leave 1 per partition), and nothing waits to be emitted
    wait_for(
        lambda: first.registry.snapshot()["gauges"].get("source:site:lag_records") == 0,
        10.0, "the source's lag gauge at 0",
    )  # fmt: skip
    first.stop()
    assert numbers(reader.poll()) == Counter(range(n))
    assert committed(kafka_bootstrap, "logfactory-site", site_topic) == n
    rec = next(r for r in reader.records if json.loads(r.line)["i"] == 7)
    assert rec.source == "app"
    assert rec.host == "n3"
    assert rec.meta["topic"] == site_topic
    assert rec.meta["key"] == "host2"
    assert set(rec.meta) == {"topic", "partition", "offset", "key"}
    counters = first.registry.snapshot()["counters"]["source:site"]
    assert counters["received"] == n
    assert "rejected" not in counters

    produce(kafka_bootstrap, site_topic, n, n + 40)
    second = start(runners, cfg, bus)
    reader.wait_count(n + 40, timeout=30)
    second.stop()
    assert numbers(reader.poll()) == Counter(range(n + 40))  # nothing re-read, nothing lost
    assert max(positions(reader.records).values()) == 1


def test_crash_before_commit_rereads_never_skips(
    tmp_path: Path, kafka_bootstrap: str, site_topic: str, bus: LocalBus,
    runners: list[AgentRunner],
) -> None:  # fmt: skip
    n = 200
    produce(kafka_bootstrap, site_topic, 0, n)
    cfg = config(tmp_path, kafka_bootstrap, site_topic, group="crashy", host_from="key")
    reader = Reader(bus)
    crashing = start(runners, cfg, bus, checkpoint_interval=3600)  # never commits on its own
    reader.wait_count(n, timeout=30)
    src = crashing.source
    assert isinstance(src, KafkaInputSource)

    def emitted() -> int:
        return sum(cast(tuple[dict[Any, int], bool], src.checkpoint())[0].values())

    wait_for(lambda: emitted() == n, 10, "all offsets emitted")
    crashing.crash()
    assert committed(kafka_bootstrap, "crashy", site_topic) == 0  # nothing was committed

    again = start(runners, cfg, bus)
    reader.wait_count(2 * n, timeout=30)  # the uncommitted tail (all n) comes again
    again.stop()
    assert committed(kafka_bootstrap, "crashy", site_topic) == n
    got = numbers(reader.poll())
    assert set(got) == set(range(n))
    assert max(got.values()) == 2
    assert len(reader.records) == 2 * n
    assert {r.host for r in reader.records} == {f"host{i}" for i in range(5)}

    produce(kafka_bootstrap, site_topic, n, n + 10)
    last = start(runners, cfg, bus)
    reader.wait_count(2 * n + 10, timeout=30)
    last.stop()
    got = numbers(reader.poll())
    assert all(got[i] == 1 for i in range(n, n + 10))
    assert len(reader.records) == 2 * n + 10


def test_tombstones_are_rejected_and_bad_utf8_is_kept(
    tmp_path: Path, kafka_bootstrap: str, site_topic: str, bus: LocalBus,
    runners: list[AgentRunner],
) -> None:  # fmt: skip
    producer = Producer(quiet({"bootstrap.servers": kafka_bootstrap}))
    producer.produce(site_topic, None, b"k1", partition=0)
    producer.produce(site_topic, b"caf\xe9 latin-1", None, partition=0)
    producer.produce(site_topic, b"plain", b"k2", partition=0)
    producer.flush(30)
    cfg = config(tmp_path, kafka_bootstrap, site_topic, host_from="edge01", start_at="beginning")
    reader = Reader(bus)
    runner = start(runners, cfg, bus)
    reader.wait_count(2, timeout=30)
    wait_for(lambda: committed(kafka_bootstrap, "logfactory-site", site_topic) == 3, 15,
             "the tombstone's offset committed too")  # fmt: skip
    runner.stop()
    recs = sorted(reader.poll(), key=lambda r: r.meta["offset"])
    assert [r.line for r in recs] == ["caf\ufffd latin-1", "plain"]
    assert recs[0].raw == b"caf\xe9 latin-1"
    assert "key" not in recs[0].meta
    assert {r.host for r in recs} == {"edge01"}
    assert runner.registry.snapshot()["counters"]["source:site"]["rejected"] == 1


def test_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"bootstrap\.servers"):
        KafkaInputSource(
            source_as(KafkaSourceConfig, type="kafka", topics=["t"]), SourceContext(tmp_path)
        )
    with pytest.raises(ValueError, match="'topics'"):
        KafkaInputSource(
            source_as(KafkaSourceConfig, type="kafka", kafka={"bootstrap.servers": "h:9092"}),
            SourceContext(tmp_path),
        )
    kafka: dict[str, str | int | bool] = {"bootstrap.servers": "h:1", "enable.auto.commit": True}
    src = KafkaInputSource(
        source_as(KafkaSourceConfig, type="kafka", name="x", topics=["t"], kafka=kafka),
        SourceContext(tmp_path),
    )
    assert src.group == "logfactory-x"
    assert src.settings["enable.auto.commit"] is False


def test_lag_is_the_topic_end_minus_what_was_received(
    tmp_path: Path, kafka_bootstrap: str, site_topic: str
) -> None:
    produce(kafka_bootstrap, site_topic, 0, 300)
    cfg = config(tmp_path, kafka_bootstrap, site_topic)
    sc = source_of(cfg, KafkaSourceConfig)
    src = KafkaInputSource(sc, SourceContext(tmp_path, name="site"), batch_size=10)
    consumer = src._open()
    try:
        got: list[Any] = []
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            got = [m for m in consumer.consume(10, 1.0) if m.error() is None]
        assert got, "nothing consumed"
        src._measure_lag(consumer, got)
        nxt: dict[int, int] = {}
        for m in got:
            nxt[m.partition()] = m.offset() + 1
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(site_topic, p), timeout=10)[1]
            for p in nxt
        }
        expected = sum(ends[p] - nxt[p] for p in nxt)
        assert expected > 0  # 10 of 300 received: the rest is behind
        assert src.lag() == (expected, "records")
    finally:
        consumer.close()
