"""librdkafka settings of the Kafka bus: safe defaults, user overrides, and error mapping.

Why a module of its own: which settings each client gets is the part of the Kafka bus that can
be tested without a broker, and the defaults are the delivery guarantees (idempotent producer,
``acks=all``, read_committed consumers, manual commits), so they are written down in one place.

Overrides come from the ``kafka.*`` keys of the bus configuration. A few keys are the bus's own
(not librdkafka's) and are taken out first: ``bootstrap.servers``, ``replication.factor``,
``min.insync.replicas`` (topic creation) and ``transactional.id`` (the stable prefix of this
worker's transactional ids). librdkafka logs a warning for a consumer-only key given to a
producer (and vice versa), so keys known to belong to one client kind are routed only to it;
any other key goes to every client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from logfactory.bus.base import BusError

__all__ = [
    "BUS_KEYS",
    "FENCED_CODES",
    "KafkaSettings",
    "admin_config",
    "consumer_config",
    "producer_config",
    "split_settings",
    "topic_config",
    "txn_producer_config",
]

Conf = dict[str, str | int | bool | float]

#: keys of ``bus.kafka`` that configure the bus itself, not a librdkafka client
BUS_KEYS = frozenset(
    {"bootstrap.servers", "replication.factor", "min.insync.replicas", "transactional.id"}
)

# librdkafka marks every property P (producer), C (consumer) or * (both); these are the common
# one-sided ones. Anything else is passed to all clients.
_CONSUMER_ONLY = frozenset(
    {
        "session.timeout.ms",
        "heartbeat.interval.ms",
        "max.poll.interval.ms",
        "group.instance.id",
        "group.protocol",
        "group.remote.assignor",
        "partition.assignment.strategy",
        "fetch.wait.max.ms",
        "fetch.min.bytes",
        "fetch.max.bytes",
        "fetch.message.max.bytes",
        "max.partition.fetch.bytes",
        "queued.min.messages",
        "queued.max.messages.kbytes",
        "auto.offset.reset",
        "isolation.level",
        "check.crcs",
        "coordinator.query.interval.ms",
    }
)
_PRODUCER_ONLY = frozenset(
    {
        "acks",
        "request.required.acks",
        "enable.idempotence",
        "compression.type",
        "compression.codec",
        "compression.level",
        "linger.ms",
        "queue.buffering.max.ms",
        "queue.buffering.max.messages",
        "queue.buffering.max.kbytes",
        "batch.size",
        "batch.num.messages",
        "retries",
        "message.send.max.retries",
        "retry.backoff.ms",
        "delivery.timeout.ms",
        "message.timeout.ms",
        "request.timeout.ms",
        "partitioner",
        "sticky.partitioning.linger.ms",
        "max.in.flight.requests.per.connection",
        "max.in.flight",
        "transaction.timeout.ms",
    }
)

#: librdkafka error names that mean "another member or producer owns this work now"
FENCED_CODES = frozenset(
    {
        "_FENCED",
        "PRODUCER_FENCED",
        "INVALID_PRODUCER_EPOCH",
        "UNKNOWN_MEMBER_ID",
        "REBALANCE_IN_PROGRESS",
        "ILLEGAL_GENERATION",
        "FENCED_INSTANCE_ID",
        "FENCED_MEMBER_EPOCH",
        "STALE_MEMBER_EPOCH",
        "_MAX_POLL_EXCEEDED",
        "_ASSIGNMENT_LOST",
    }
)

#: largest message the bus promises to carry (the contract sends 10 MiB payloads)
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """The ``kafka.*`` keys of a bus configuration, split into the bus's own and librdkafka's."""

    bootstrap: str
    replication_factor: int = 1
    min_insync_replicas: int = 1
    transactional_id: str | None = None
    overrides: Conf = field(default_factory=dict)


def split_settings(
    keys: Mapping[str, str | int | bool | float], bootstrap: str | None = None
) -> KafkaSettings:
    """Separate the bus's own keys from librdkafka overrides; a missing bootstrap is an error."""
    servers = bootstrap or keys.get("bootstrap.servers")
    if not servers or not isinstance(servers, str):
        raise BusError("bus.kafka needs 'bootstrap.servers' (e.g. '127.0.0.1:9092')")
    try:
        rf = int(keys.get("replication.factor", 1))
        isr = int(keys.get("min.insync.replicas", 1))
    except (TypeError, ValueError) as e:
        raise BusError(f"bus.kafka: replication.factor/min.insync.replicas: {e}") from None
    if rf < 1 or not 1 <= isr <= rf:
        raise BusError(
            f"bus.kafka: need replication.factor >= 1 and 1 <= min.insync.replicas <= "
            f"replication.factor (got {rf} and {isr})"
        )
    tid = keys.get("transactional.id")
    overrides = {k: v for k, v in keys.items() if k not in BUS_KEYS}
    return KafkaSettings(servers, rf, isr, str(tid) if tid else None, overrides)


def _merged(base: Conf, overrides: Conf, skip: frozenset[str]) -> Conf:
    out = dict(base)
    out.update({k: v for k, v in overrides.items() if k not in skip})
    return out


def producer_config(settings: KafkaSettings, client_id: str) -> Conf:
    """An idempotent, ``acks=all``, lz4-compressed producer whose key placement is CRC-32.

    ``consistent_random`` is CRC-32 of the key modulo the partition count (the same as
    :func:`~logfactory.bus.base.partition_for_key`) and spreads keyless messages; the empty key
    is placed explicitly by the producer because librdkafka treats it like a missing one.
    Deliveries that cannot complete within ``message.timeout.ms`` fail (and ``flush`` raises)
    instead of retrying forever.
    """
    base: Conf = {
        "bootstrap.servers": settings.bootstrap,
        "client.id": client_id,
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "lz4",
        "partitioner": "consistent_random",
        "linger.ms": 5,
        "message.timeout.ms": 30_000,
        "message.max.bytes": MAX_MESSAGE_BYTES + 1024 * 1024,
    }
    return _merged(base, settings.overrides, _CONSUMER_ONLY)


TXN_RETRY_BACKOFF_MS = 10


def txn_producer_config(settings: KafkaSettings, client_id: str, transactional_id: str) -> Conf:
    """:func:`producer_config` for one consume-transform-produce worker.

    ``retry.backoff.ms`` is lowered unless set: back to back, the coordinator answers the next
    transaction's first request with CONCURRENT_TRANSACTIONS while the previous commit's markers
    are still being written, and librdkafka's default 100 ms wait before the retry put a floor
    of 100 ms under every batch at low rates (the Java client waits 20 ms there, KAFKA-5477).
    A message may not outlive the transaction it belongs to, hence the capped message timeout.
    """
    conf = producer_config(settings, client_id)
    conf.setdefault("transaction.timeout.ms", 10_000)
    if "retry.backoff.ms" not in settings.overrides:
        conf["retry.backoff.ms"] = TXN_RETRY_BACKOFF_MS
    conf["message.timeout.ms"] = min(
        int(conf["message.timeout.ms"]), int(conf["transaction.timeout.ms"])
    )
    conf["transactional.id"] = transactional_id
    return conf


def consumer_config(settings: KafkaSettings, client_id: str, group: str, start: str) -> Conf:
    """A read_committed consumer that commits only when told to and never stores offsets itself."""
    base: Conf = {
        "bootstrap.servers": settings.bootstrap,
        "client.id": client_id,
        "group.id": group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest" if start == "earliest" else "latest",
        "enable.partition.eof": False,
        "partition.assignment.strategy": "range",
        "fetch.message.max.bytes": MAX_MESSAGE_BYTES + 1024 * 1024,
        "fetch.wait.max.ms": 100,
    }
    merged = _merged(base, settings.overrides, _PRODUCER_ONLY)
    # the bus's guarantees rest on these; an override may not turn them off
    merged.update({"enable.auto.commit": False, "enable.auto.offset.store": False})
    merged["group.id"] = group
    return merged


def admin_config(settings: KafkaSettings, client_id: str) -> Conf:
    return _merged(
        {"bootstrap.servers": settings.bootstrap, "client.id": client_id},
        settings.overrides,
        _CONSUMER_ONLY | _PRODUCER_ONLY,
    )


def topic_config(
    settings: KafkaSettings,
    *,
    compact: bool,
    retention_ms: int | None,
    retention_bytes: int | None,
) -> dict[str, str]:
    """Topic-level settings for a new topic.

    A compacted topic is ``compact,delete`` with unlimited retention unless asked otherwise:
    the same as ``compact`` for Kafka's cleaner, but it lets :meth:`KafkaBus.maintain` drop a
    superseded prefix with DeleteRecords (which Kafka refuses on a compact-only topic).
    """
    out = {
        "min.insync.replicas": str(settings.min_insync_replicas),
        "max.message.bytes": str(MAX_MESSAGE_BYTES + 1024 * 1024),
        "cleanup.policy": "compact,delete" if compact else "delete",
    }
    if compact or retention_ms is not None:
        out["retention.ms"] = str(retention_ms if retention_ms is not None else -1)
    if compact or retention_bytes is not None:
        out["retention.bytes"] = str(retention_bytes if retention_bytes is not None else -1)
    return out
