"""The real Kafka brokers the Kafka bus is tested on: partitions, transactions, replication.

These prove the test infrastructure (tests/kafka_broker.py), not logfactory code: if they fail,
every Kafka bus test would fail for a reason that is not the bus.
"""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from tests.helpers.waiting import wait_for
from tests.kafka_broker import KafkaCluster, quiet

pytestmark = pytest.mark.integration


def _create(bootstrap: str, topic: str, partitions: int, rf: int, **config: str) -> None:
    admin = AdminClient(quiet({"bootstrap.servers": bootstrap}))
    admin.create_topics([NewTopic(topic, partitions, rf, config=config)])[topic].result(30)


def _produce(conf: dict[str, Any], topic: str, count: int, start: int = 0) -> list[Message]:
    """Write ``count`` keyed records; return their delivery reports (all must succeed)."""
    producer = Producer(quiet(conf))
    delivered: list[Message] = []
    errors: list[KafkaError] = []

    def report(err: KafkaError | None, msg: Message) -> None:
        if err is None:
            delivered.append(msg)
        else:
            errors.append(err)

    for n in range(start, start + count):
        producer.produce(topic, value=f"v{n}".encode(), key=f"k{n}".encode(), on_delivery=report)
    assert producer.flush(30) == 0
    assert errors == []
    return delivered


def _consume(bootstrap: str, topic: str, count: int, **extra: Any) -> list[Message]:
    """Read ``count`` records from the start of ``topic`` with a fresh consumer group."""
    consumer = Consumer(
        quiet({"bootstrap.servers": bootstrap, "group.id": f"g-{topic}",
               "auto.offset.reset": "earliest", **extra})
    )  # fmt: skip
    got: list[Message] = []
    consumer.subscribe([topic])
    try:

        def more() -> bool:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                got.append(msg)
            return len(got) >= count

        wait_for(more, timeout=30, what=f"{count} records on {topic}")
        extra_msg = consumer.poll(0.5)  # nothing beyond what was written
        assert extra_msg is None or extra_msg.error() is not None
    finally:
        consumer.close()
    return got


def test_single_broker_spreads_keys_over_four_partitions(
    kafka_bootstrap: str, kafka_topic: str
) -> None:
    _create(kafka_bootstrap, kafka_topic, 4, 1)
    conf = {"bootstrap.servers": kafka_bootstrap, "acks": "all", "enable.idempotence": True}
    _produce(conf, kafka_topic, 200)
    got = _consume(kafka_bootstrap, kafka_topic, 200)
    assert sorted(m.value() or b"" for m in got) == sorted(f"v{n}".encode() for n in range(200))
    assert {m.partition() for m in got} == {0, 1, 2, 3}
    per_partition: dict[int | None, list[int | None]] = {}
    for m in got:
        per_partition.setdefault(m.partition(), []).append(m.offset())
    assert all(offs == sorted(o or 0 for o in offs) for offs in per_partition.values())


def test_single_broker_transactions_commit_and_abort(
    kafka_bootstrap: str, kafka_topic: str
) -> None:
    _create(kafka_bootstrap, kafka_topic, 2, 1)
    producer = Producer(
        quiet({"bootstrap.servers": kafka_bootstrap, "transactional.id": f"tx-{kafka_topic}"})
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for n in range(10):
        producer.produce(kafka_topic, value=f"aborted{n}".encode(), key=b"a")
    producer.abort_transaction(30)
    producer.begin_transaction()
    for n in range(10):
        producer.produce(kafka_topic, value=f"committed{n}".encode(), key=f"k{n}".encode())
    producer.commit_transaction(30)
    got = _consume(kafka_bootstrap, kafka_topic, 10, **{"isolation.level": "read_committed"})
    assert sorted(m.value() or b"" for m in got) == sorted(
        f"committed{n}".encode() for n in range(10)
    )


def _isr(bootstrap: str, topic: str, partition: int = 0) -> list[int]:
    meta = AdminClient(quiet({"bootstrap.servers": bootstrap})).list_topics(topic, timeout=10)
    return sorted(meta.topics[topic].partitions[partition].isrs)


def _leader(bootstrap: str, topic: str) -> int:
    meta = AdminClient(quiet({"bootstrap.servers": bootstrap})).list_topics(topic, timeout=10)
    return int(meta.topics[topic].partitions[0].leader)


def test_cluster_keeps_accepting_acks_all_with_one_broker_down(
    kafka_cluster: KafkaCluster, kafka_topic: str
) -> None:
    boot = kafka_cluster.bootstrap
    _create(boot, kafka_topic, 1, 3, **{"min.insync.replicas": "2"})
    conf = {"bootstrap.servers": boot, "acks": "all", "enable.idempotence": True}
    _produce(conf, kafka_topic, 50)
    assert _isr(boot, kafka_topic) == [1, 2, 3]

    down = _leader(boot, kafka_topic) - 1  # the leader: writes must fail over, not just continue
    kafka_cluster.stop(down)
    try:
        wait_for(lambda: len(_isr(boot, kafka_topic)) == 2, timeout=30, what="ISR shrinks to 2")
        assert _leader(boot, kafka_topic) != down + 1
        _produce(conf, kafka_topic, 50, start=50)
    finally:
        kafka_cluster.start(down)
    wait_for(lambda: _isr(boot, kafka_topic) == [1, 2, 3], timeout=60, what="node rejoins ISR")
    got = _consume(boot, kafka_topic, 100)
    assert [m.value() for m in got] == [f"v{n}".encode() for n in range(100)]


def test_cluster_survives_a_killed_broker_and_takes_it_back(
    kafka_cluster: KafkaCluster, kafka_topic: str
) -> None:
    boot = kafka_cluster.bootstrap
    _create(boot, kafka_topic, 3, 3, **{"min.insync.replicas": "2"})
    conf = {"bootstrap.servers": boot, "acks": "all", "enable.idempotence": True}
    _produce(conf, kafka_topic, 30)

    kafka_cluster.kill(2)  # no controlled shutdown: the controller must fence node 3 by itself
    try:
        assert not kafka_cluster.is_running(2)
        sent = _produce(conf, kafka_topic, 30, start=30)  # every partition had node 3 as replica
        assert {m.partition() for m in sent} == {0, 1, 2}
        assert all(3 not in _isr(boot, kafka_topic, p) for p in range(3))
    finally:
        kafka_cluster.start(2)
    wait_for(
        lambda: all(_isr(boot, kafka_topic, p) == [1, 2, 3] for p in range(3)),
        timeout=60,
        what="killed node back in every ISR",
    )
    assert len(_consume(boot, kafka_topic, 60)) == 60
