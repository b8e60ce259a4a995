"""The collector's spool on a real broker: the broker stops while records keep coming, comes
back, and every record is on the topic exactly once, in order per key (issue 3)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # confluent_kafka.admin does not re-export it in its stubs
from tests.helpers.waiting import wait_for
from tests.kafka_broker import KafkaCluster, quiet

from logfactory.bus.base import BusError, TopicSpec
from logfactory.bus.kafka import KafkaBus, KafkaConsumer
from logfactory.bus.kafka import bus as kafka_module
from logfactory.collect.spool import SpoolingProducer
from logfactory.stats import StatsRegistry

pytestmark = pytest.mark.integration

TOPIC = "logs.raw"
KEYS = [b"host%d" % i for i in range(8)]


def _produce(spool: SpoolingProducer, start: int, stop: int) -> None:
    for n in range(start, stop):
        key = KEYS[n % len(KEYS)]
        spool.produce(TOPIC, b"%s:%d" % (key, n), key)


def _read_all(bootstrap: str, want: int, topic: str = TOPIC) -> list[tuple[bytes, bytes]]:
    # a fresh client: right after the restart the partition leaders may not be known yet
    bus = KafkaBus(bootstrap, config={"log_level": 0})
    consumers: list[KafkaConsumer] = []

    def opened() -> bool:
        try:
            consumers.append(bus.consumer(None, [topic], "earliest"))
        except BusError:
            return False
        return True

    wait_for(opened, timeout=30, what="a consumer of the restarted broker")
    consumer = consumers[0]
    got: list[tuple[bytes, bytes]] = []
    try:

        def more() -> bool:
            got.extend((m.key or b"", m.value) for m in consumer.poll(2000, timeout=0.2))
            return len(got) >= want

        wait_for(more, timeout=30, what=f"{want} records on {topic}")
        got.extend((m.key or b"", m.value) for m in consumer.poll(2000, timeout=0.5))
    finally:
        consumer.close()
        bus.close()
    return got


def test_a_broker_outage_loses_duplicates_and_reorders_nothing(
    tmp_path: Path, make_kafka: Callable[[int], KafkaCluster]
) -> None:
    cluster = make_kafka(1)
    bus = KafkaBus(cluster.bootstrap, config={"log_level": 0}, partitions=4)
    bus.ensure_topic(TopicSpec(TOPIC, 4))
    registry = StatsRegistry("collector")
    path = tmp_path / "spool" / "collector.db"
    spool = SpoolingProducer(bus.producer(patient=True), path, registry=registry)
    try:
        _produce(spool, 0, 5000)
        spool.flush()  # a new producer may take longer than a checkpoint: spooled, then resent
        wait_for(lambda: spool.state()["mode"] == "direct", timeout=30, what="a settled bus")

        cluster.stop(0)
        _produce(spool, 5000, 7500)
        spool.flush()  # the brokers are gone: spools instead of raising
        state = spool.state()
        assert state["mode"] == "spooling", state
        assert "check that the brokers are reachable" in state["error"], state
        _produce(spool, 7500, 10_000)
        spool.flush()
        db = sqlite3.connect(path)
        try:
            (on_disk,) = db.execute("SELECT COUNT(*) FROM spool").fetchone()
        finally:
            db.close()
        assert on_disk == spool.state()["records"] >= 2500  # durable while the bus is away
        assert "spool" in registry.problems()

        cluster.start(0)
        wait_for(lambda: spool.state()["mode"] == "direct", timeout=60, what="the spool to drain")
        assert spool.state()["records"] == 0
    finally:
        spool.close()

    bus.close()
    got = _read_all(cluster.bootstrap, 10_000)
    values = [v for _k, v in got]
    # all there, exactly once
    assert len(values) == 10_000
    assert len(set(values)) == 10_000
    for key in KEYS:
        seq = [int(v.split(b":")[1]) for k, v in got if k == key]
        assert seq == sorted(seq), key
        assert len(seq) == 10_000 // len(KEYS), key


def _isr(admin: AdminClient, topic: str) -> list[int]:
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    return sorted(partitions[0].isrs) if 0 in partitions else []  # [] until metadata has it


def test_a_bus_that_answers_but_does_not_acknowledge_is_reported_as_such(
    tmp_path: Path, kafka_cluster: KafkaCluster, kafka_topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Spooling is right for a bus that only does not acknowledge too, but the operator must not
    be sent to look for a dead broker: here two of three brokers answer, and the partition
    demands three in-sync replicas, so nothing is acknowledged until the third returns."""
    # the probe asks two busy brokers for metadata: give it time on a loaded machine
    monkeypatch.setattr(kafka_module, "_PROBE_TIMEOUT", 5.0)
    boot = kafka_cluster.bootstrap
    admin = AdminClient(quiet({"bootstrap.servers": boot}))
    spec = NewTopic(kafka_topic, 1, 3, config={"min.insync.replicas": "3"})
    admin.create_topics([spec])[kafka_topic].result(30)
    wait_for(lambda: _isr(admin, kafka_topic) == [1, 2, 3], timeout=30, what="the new topic")
    leader = admin.list_topics(kafka_topic, timeout=10).topics[kafka_topic].partitions[0].leader
    down = next(i for i in range(3) if i + 1 != leader)  # a follower: the leader stays put
    bus = KafkaBus(boot, config={"log_level": 0})
    registry = StatsRegistry("collector")
    spool = SpoolingProducer(
        bus.producer(patient=True), tmp_path / "collector.db", registry=registry,
        flush_timeout=1.0,
    )  # fmt: skip
    kafka_cluster.stop(down)
    try:
        wait_for(lambda: len(_isr(admin, kafka_topic)) == 2, timeout=30, what="ISR shrinks to 2")
        spool.produce(kafka_topic, b"held back", b"k")
        spool.flush()
        state = spool.state()
        assert state["mode"] == "spooling", state
        assert "although the brokers answer" in state["error"], state
        assert "min.insync.replicas" in state["error"], state
        assert "bus not taking records since" in registry.problems()["spool"]
    finally:
        kafka_cluster.start(down)
    try:
        wait_for(lambda: spool.state()["mode"] == "direct", timeout=90, what="the spool to drain")
    finally:
        spool.close()
        bus.close()
    assert [v for _k, v in _read_all(boot, 1, kafka_topic)] == [b"held back"]
