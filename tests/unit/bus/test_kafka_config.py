"""The Kafka bus's settings without a broker: defaults that carry the delivery guarantees,
how ``kafka.*`` overrides are routed, topic settings, error mapping, transactional ids."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from logfactory.bus.base import BusError, FencedError
from logfactory.bus.kafka import KafkaBus
from logfactory.bus.kafka.config import (
    BUS_KEYS,
    FENCED_CODES,
    admin_config,
    consumer_config,
    producer_config,
    split_settings,
    topic_config,
    txn_producer_config,
)
from logfactory.bus.kafka.errors import raise_mapped
from logfactory.config import BusConfig


def test_bus_keys_are_taken_out_and_the_rest_are_overrides() -> None:
    s = split_settings(
        {
            "bootstrap.servers": "h1:9092,h2:9092",
            "replication.factor": 3,
            "min.insync.replicas": "2",
            "transactional.id": "worker-a",
            "linger.ms": 20,
        }
    )
    assert (s.bootstrap, s.replication_factor, s.min_insync_replicas) == ("h1:9092,h2:9092", 3, 2)
    assert s.transactional_id == "worker-a"
    assert s.overrides == {"linger.ms": 20}
    assert not set(s.overrides) & BUS_KEYS


@pytest.mark.parametrize(
    ("keys", "reason"),
    [
        ({}, "bootstrap.servers"),
        ({"bootstrap.servers": ""}, "bootstrap.servers"),
        ({"bootstrap.servers": "h:1", "replication.factor": 0}, "replication.factor >= 1"),
        ({"bootstrap.servers": "h:1", "min.insync.replicas": 2}, "min.insync.replicas"),
        ({"bootstrap.servers": "h:1", "replication.factor": "three"}, "replication.factor"),
    ],
)
def test_bad_settings_are_clear_errors(keys: dict[str, str | int], reason: str) -> None:
    with pytest.raises(BusError, match=reason):
        split_settings(keys)


def test_producer_defaults_are_safe_and_overridable() -> None:
    conf = producer_config(split_settings({"bootstrap.servers": "h:1"}), "cid")
    assert conf["enable.idempotence"] is True
    assert conf["acks"] == "all"
    assert conf["compression.type"] in {"lz4", "zstd"}
    assert conf["partitioner"] == "consistent_random"  # CRC-32, as partition_for_key
    assert int(conf["message.max.bytes"]) > 10 * 1024 * 1024
    assert int(conf["message.timeout.ms"]) > 0  # bounded: flush raises instead of hanging
    tuned = split_settings(
        {"bootstrap.servers": "h:1", "compression.type": "zstd", "session.timeout.ms": 6000}
    )
    conf = producer_config(tuned, "cid")
    assert conf["compression.type"] == "zstd"
    assert "session.timeout.ms" not in conf  # consumer-only keys stay with consumers


def test_consumer_guarantees_cannot_be_overridden() -> None:
    s = split_settings(
        {
            "bootstrap.servers": "h:1",
            "enable.auto.commit": True,
            "session.timeout.ms": 6000,
            "linger.ms": 50,
        }
    )
    conf = consumer_config(s, "cid", "g1", "latest")
    assert conf["enable.auto.commit"] is False
    assert conf["enable.auto.offset.store"] is False
    assert conf["isolation.level"] == "read_committed"
    assert conf["group.id"] == "g1"
    assert conf["auto.offset.reset"] == "latest"
    assert conf["session.timeout.ms"] == 6000
    assert "linger.ms" not in conf
    admin = admin_config(s, "cid")
    assert "linger.ms" not in admin
    assert "session.timeout.ms" not in admin
    assert admin["bootstrap.servers"] == "h:1"


def test_topic_settings() -> None:
    s = split_settings({"bootstrap.servers": "h:1", "min.insync.replicas": 1})
    plain = topic_config(s, compact=False, retention_ms=None, retention_bytes=None)
    assert plain["cleanup.policy"] == "delete"
    assert "retention.ms" not in plain
    assert "retention.bytes" not in plain
    assert int(plain["max.message.bytes"]) > 10 * 1024 * 1024
    aged = topic_config(s, compact=False, retention_ms=700, retention_bytes=1000)
    assert (aged["retention.ms"], aged["retention.bytes"]) == ("700", "1000")
    compacted = topic_config(s, compact=True, retention_ms=None, retention_bytes=None)
    # compact,delete with unlimited retention: DeleteRecords allowed, nothing expires
    assert compacted["cleanup.policy"] == "compact,delete"
    assert (compacted["retention.ms"], compacted["retention.bytes"]) == ("-1", "-1")


@pytest.mark.parametrize("code", sorted(c for c in FENCED_CODES if hasattr(KafkaError, c)))
def test_fencing_errors_map_to_fenced_error(code: str) -> None:
    with pytest.raises(FencedError, match=code):
        raise_mapped(KafkaError(getattr(KafkaError, code)), "commit")


def test_other_errors_map_to_bus_error() -> None:
    with pytest.raises(BusError, match=r"commit: .*MSG_SIZE_TOO_LARGE") as info:
        raise_mapped(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), "commit")
    assert not isinstance(info.value, FencedError)


def test_transactional_ids_are_stable_with_a_prefix_and_unique_without() -> None:
    stable = KafkaBus("127.0.0.1:1", transactional_id="worker-a")
    assert [stable.txn_id("g"), stable.txn_id("g"), stable.txn_id("h")] == [
        "worker-a.g.0",
        "worker-a.g.1",
        "worker-a.h.0",
    ]
    again = KafkaBus("127.0.0.1:1", transactional_id="worker-a")
    assert again.txn_id("g") == "worker-a.g.0"  # the same after a restart
    loose = KafkaBus("127.0.0.1:1")
    assert loose.txn_id("g") != loose.txn_id("g")
    for bus in (stable, again, loose):
        bus.close()


def test_from_bus_config() -> None:
    cfg = BusConfig(
        type="kafka",
        partitions=6,
        kafka={"bootstrap.servers": "k1:9092", "replication.factor": 3, "linger.ms": 1},
    )
    bus = KafkaBus.from_config(cfg, client_id="factory-1")
    assert bus.default_partitions == 6
    assert bus.settings.bootstrap == "k1:9092"
    assert bus.settings.replication_factor == 3
    assert bus.settings.overrides == {"linger.ms": 1}
    assert bus.client_id == "factory-1"
    bus.close()


def test_transactional_producer_retries_concurrent_transactions_quickly_unless_told() -> None:
    # librdkafka's 100 ms retry.backoff.ms after CONCURRENT_TRANSACTIONS would put a 100 ms
    # floor under every batch; the user's own setting still wins
    conf = txn_producer_config(split_settings({"bootstrap.servers": "h:1"}), "c", "lf.g.0")
    assert conf["retry.backoff.ms"] == 10
    assert conf["transactional.id"] == "lf.g.0"
    message_timeout = conf["message.timeout.ms"]
    assert conf["transaction.timeout.ms"] == 10_000
    assert isinstance(message_timeout, int)
    assert message_timeout <= 10_000
    assert conf["acks"] == "all"
    assert conf["enable.idempotence"] is True
    own = split_settings({"bootstrap.servers": "h:1", "retry.backoff.ms": 250})
    assert txn_producer_config(own, "c", "lf.g.0")["retry.backoff.ms"] == 250
