"""The collector's spool on a real broker: the broker stops while records keep coming, comes
back, and every record is on the topic exactly once, in order per key (issue 3)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.conftest import wait_for
from tests.kafka_broker import KafkaCluster

from logfactory.bus.base import BusError, TopicSpec
from logfactory.bus.kafka import KafkaBus, KafkaConsumer
from logfactory.collect.spool import SpoolingProducer
from logfactory.stats import StatsRegistry

pytestmark = pytest.mark.integration

TOPIC = "logs.raw"
KEYS = [b"host%d" % i for i in range(8)]


def _produce(spool: SpoolingProducer, start: int, stop: int) -> None:
    for n in range(start, stop):
        key = KEYS[n % len(KEYS)]
        spool.produce(TOPIC, b"%s:%d" % (key, n), key)


def _read_all(bootstrap: str, want: int) -> list[tuple[bytes, bytes]]:
    # a fresh client: right after the restart the partition leaders may not be known yet
    bus = KafkaBus(bootstrap, config={"log_level": 0})
    consumers: list[KafkaConsumer] = []

    def opened() -> bool:
        try:
            consumers.append(bus.consumer(None, [TOPIC], "earliest"))
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

        wait_for(more, timeout=30, what=f"{want} records on {TOPIC}")
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
        assert state["mode"] == "spooling" and state["error"], state
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
    assert len(values) == 10_000 and len(set(values)) == 10_000  # all there, exactly once
    for key in KEYS:
        seq = [int(v.split(b":")[1]) for k, v in got if k == key]
        assert seq == sorted(seq) and len(seq) == 10_000 // len(KEYS), key
