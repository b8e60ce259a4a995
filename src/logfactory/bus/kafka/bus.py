"""The Apache Kafka bus: the bus contract on a real cluster (librdkafka via confluent-kafka).

Why Kafka: sites that outgrow one machine need a log that several hosts share, with consumer
groups that spread partitions over workers and transactions that commit input offsets with
outputs (exactly once from ``logs.raw`` to ``events.*``).

How the contract maps (held by ``tests/contract``, which runs against both buses):

* placement: keys go to CRC-32(key) mod partitions - librdkafka's ``consistent_random``
  partitioner is exactly :func:`~logfactory.bus.base.partition_for_key`; keyless messages are
  spread (sticky-random instead of round-robin);
* durability: idempotent producer, ``acks=all``, lz4; ``flush`` raises :class:`BusError` if any
  message could not be delivered within ``message.timeout.ms`` (errors are sticky);
* reading: ``read_committed`` consumers, manual synchronous commits, start offsets resolved
  by the bus (see :mod:`logfactory.bus.kafka.consumer`); watermarks are the log start offset
  and the last *stable* offset, i.e. what a read_committed reader can reach;
* transactions: see :mod:`logfactory.bus.kafka.txn`; when the ``with`` block returns, the
  outputs are readable (the bus waits for the commit markers, bounded);
* retention and compaction: Kafka applies them itself, but only to closed segments and on
  its own schedule; :meth:`KafkaBus.maintain` enforces them now with DeleteRecords (see
  :mod:`logfactory.bus.kafka.maintenance`).
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from confluent_kafka import IsolationLevel, KafkaError, KafkaException
from confluent_kafka import Producer as RdProducer
from confluent_kafka import TopicPartition as RdTopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec  # type: ignore[attr-defined]

from logfactory.bus.base import BusError, StartFrom, TopicPartition, TopicSpec
from logfactory.bus.kafka.config import (
    KafkaSettings,
    admin_config,
    producer_config,
    split_settings,
    topic_config,
)
from logfactory.bus.kafka.consumer import KafkaConsumer
from logfactory.bus.kafka.group_offsets import GroupOffsets
from logfactory.bus.kafka.maintenance import close_maintenance, maintain
from logfactory.bus.kafka.transaction import KafkaTransaction
from logfactory.bus.kafka.txn import TxnProducer

if TYPE_CHECKING:
    from logfactory.config import BusConfig

__all__ = ["KafkaBus", "KafkaConsumer", "KafkaProducer", "KafkaTransaction"]

_TIMEOUT = 30.0
_EARLIEST: OffsetSpec = OffsetSpec.earliest()  # type: ignore[no-untyped-call]
_LATEST: OffsetSpec = OffsetSpec.latest()  # type: ignore[no-untyped-call]
_VISIBLE_WAIT = 5.0
_RENEW_AFTER_S = 3.0  # offsets still settling after this long: ask again on a new admin client
_PROBE_TIMEOUT = 0.5  # a metadata round trip, after a flush that timed out
# errors of a partition whose leader is still being elected or propagated (new topic, failover)
log = logging.getLogger(__name__)

_SETTLING = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.FENCED_LEADER_EPOCH,  # a failover: the new leader's epoch is not known yet
        KafkaError.UNKNOWN_LEADER_EPOCH,
        KafkaError.OFFSET_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError._NOENT,  # "No leaders found": metadata still empty after a broker restart
    }
)


class KafkaProducer:
    """Non-transactional producer. Delivery errors are sticky: later calls raise them.

    ``patient``: deliveries never time out (``message.timeout.ms: 0``) and the local queue
    holds up to a million messages, unless the ``kafka:`` keys set these. A collector's spool
    (:mod:`logfactory.collect.spool`) relies on it: what it handed over before an outage must
    get to the brokers once they return, ahead of what it spooled since, and must never be
    failed back (a timed-out delivery would be lost, and the error is sticky).
    """

    def __init__(self, bus: KafkaBus, *, patient: bool = False) -> None:
        self._bus = bus
        conf: dict[str, Any] = producer_config(bus.settings, bus.client_id)
        user = bus.settings.overrides
        if patient and "message.timeout.ms" not in user and "delivery.timeout.ms" not in user:
            conf["message.timeout.ms"] = 0  # infinite
        if patient and "queue.buffering.max.messages" not in user:
            conf["queue.buffering.max.messages"] = 1_000_000
        conf["delivery.report.only.error"] = True  # no per-message callback on the hot path
        conf["on_delivery"] = self._delivered
        self._p = RdProducer(conf)
        self._error: str | None = None
        self._known: set[str] = set()
        self._closed = False

    def _delivered(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None and self._error is None:
            self._error = f"{msg.topic()}: {err.name()}: {err.str()}"

    def produce(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        if self._error is not None or self._closed:
            self._raise()
        if topic not in self._known:
            self._bus.topic_partitions(topic)  # created with the defaults if missing
            self._known.add(topic)
        while True:
            try:
                if key is not None and not key:
                    self._p.produce(topic, value, key, partition=0)  # CRC-32 of b"" is 0
                else:
                    self._p.produce(topic, value, key)
                return
            except BufferError:
                self._p.poll(0.05)  # local queue full: wait for deliveries (backpressure)
            except KafkaException as e:
                raise BusError(f"produce to {topic}: {e}") from None

    def flush(self, timeout: float | None = None) -> None:
        if self._closed:
            self._raise()
        wait = _TIMEOUT * 2 if timeout is None else timeout
        left = self._p.flush(wait)
        if self._error is not None:
            self._raise()
        if left:
            where = f"{left} messages not yet delivered to {self._bus.settings.bootstrap} after"
            if self._brokers_answer():
                raise BusError(
                    f"{where} {wait:g} s although the brokers answer: the cluster is slow, "
                    "or a partition has fewer in-sync replicas than min.insync.replicas"
                )
            raise BusError(f"{where} {wait:g} s: check that the brokers are reachable")

    def _brokers_answer(self) -> bool:
        """Whether a broker answers a metadata request now: an operator fixing a collector
        that spools needs to know if the brokers are down or only not acknowledging."""
        try:
            self._p.list_topics(timeout=_PROBE_TIMEOUT)
        except KafkaException:
            return False
        return True

    def _raise(self) -> None:
        if self._closed:
            raise BusError("producer is closed")
        raise BusError(f"delivery failed: {self._error}")

    def close(self) -> None:
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            del self._p  # release librdkafka's threads and connections now, not at GC


class KafkaBus:
    """A handle on a Kafka cluster. Open one per process; clients are cheap to create."""

    def __init__(
        self,
        bootstrap: str | None = None,
        *,
        config: Mapping[str, str | int | bool | float] | None = None,
        partitions: int = 4,
        replication_factor: int | None = None,
        min_insync_replicas: int | None = None,
        client_id: str = "logfactory",
        transactional_id: str | None = None,
    ) -> None:
        keys = dict(config or {})
        if replication_factor is not None:
            keys["replication.factor"] = replication_factor
        if min_insync_replicas is not None:
            keys["min.insync.replicas"] = min_insync_replicas
        if transactional_id is not None:
            keys["transactional.id"] = transactional_id
        self.settings: KafkaSettings = split_settings(keys, bootstrap)
        self.client_id = client_id
        self.default_partitions = partitions
        self._admin = AdminClient(admin_config(self.settings, client_id))
        self._group_offsets = GroupOffsets(self.settings, client_id)
        self._parts: dict[str, int] = {}
        self._txn_seq: dict[str, itertools.count[int]] = {}
        self._maint_state: dict[TopicPartition, Any] = {}

    @classmethod
    def from_config(cls, bus: BusConfig, client_id: str = "logfactory") -> KafkaBus:
        """From the ``bus`` section (``type: kafka``): ``kafka.bootstrap.servers`` is required;
        ``kafka.replication.factor``, ``kafka.min.insync.replicas`` and ``kafka.transactional.id``
        (this worker's stable prefix) are the bus's own; every other ``kafka.*`` key is passed
        to librdkafka."""
        return cls(config=dict(bus.kafka), partitions=bus.partitions, client_id=client_id)

    # -- topics ---------------------------------------------------------------------------
    def _describe(self, topic: str, leaders: bool = False) -> int | None:
        """Partition count of ``topic`` from the cluster metadata; None if it does not exist
        (or, with ``leaders``, while a partition has no leader yet)."""
        try:
            md = self._admin.list_topics(topic=topic, timeout=_TIMEOUT)
        except KafkaException as e:
            raise BusError(f"cannot reach Kafka at {self.settings.bootstrap}: {e}") from None
        info = md.topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            return None
        if leaders and any(p.leader < 0 for p in info.partitions.values()):
            return None
        return len(info.partitions)

    def ensure_topic(self, spec: TopicSpec) -> int:
        """Create the topic if missing; an existing one must have ``spec.partitions``."""
        have = self._ensure(spec)
        if have != spec.partitions:
            raise BusError(
                f"topic {spec.name!r} exists with {have} partitions, configured {spec.partitions}"
                ": Kafka cannot shrink a topic and growing it moves keys; recreate it or change "
                "the configured partition count"
            )
        return have

    def _ensure(self, spec: TopicSpec) -> int:
        cached = self._parts.get(spec.name)
        if cached is not None:
            return cached
        have = self._describe(spec.name)
        if have is None:
            if not spec.name or spec.partitions < 1:
                raise BusError(f"topic {spec.name!r}: needs a name and >= 1 partitions")
            conf = topic_config(
                self.settings,
                compact=spec.compact,
                retention_ms=spec.retention_ms,
                retention_bytes=spec.retention_bytes,
            )
            new = NewTopic(
                spec.name, spec.partitions, self.settings.replication_factor, config=conf
            )
            future = self._admin.create_topics([new], operation_timeout=_TIMEOUT)[spec.name]
            try:
                future.result()
            except KafkaException as e:
                err = e.args[0]
                if err.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise BusError(f"cannot create topic {spec.name!r}: {err.str()}") from None
            have = self._wait_topic(spec.name)
        self._parts[spec.name] = have
        return have

    def _wait_topic(self, topic: str) -> int:
        deadline = time.monotonic() + _TIMEOUT
        while True:
            have = self._describe(topic, leaders=True)
            if have is not None:
                return have
            if time.monotonic() > deadline:
                raise BusError(f"topic {topic!r} was created but never appeared in the metadata")
            time.sleep(0.05)

    def topic_partitions(self, topic: str) -> int:
        """Partition count; creates the topic with the defaults if it does not exist."""
        cached = self._parts.get(topic)
        if cached is not None:
            return cached
        return self._ensure(TopicSpec(topic, self.default_partitions))

    def topics(self) -> dict[str, int]:
        try:
            md = self._admin.list_topics(timeout=_TIMEOUT)
        except KafkaException as e:
            raise BusError(f"cannot reach Kafka at {self.settings.bootstrap}: {e}") from None
        return {
            name: len(t.partitions)
            for name, t in md.topics.items()
            if not name.startswith("__") and t.error is None
        }

    def _offsets(
        self, tps: Sequence[TopicPartition], spec: OffsetSpec
    ) -> dict[TopicPartition, int]:
        return self.offsets_at(dict.fromkeys(tps, spec))

    def offsets_at(self, specs: Mapping[TopicPartition, OffsetSpec]) -> dict[TopicPartition, int]:
        """ListOffsets (read_committed), one spec per partition; retried while a new leader
        settles (a fresh topic, a failover)."""
        out: dict[TopicPartition, int] = {}
        todo = dict(specs)
        deadline = time.monotonic() + _TIMEOUT
        renew_at = time.monotonic() + _RENEW_AFTER_S
        while todo:
            if time.monotonic() > renew_at:
                # librdkafka's admin client may keep asking with a leader epoch cached before
                # a broker restart (FENCED_LEADER_EPOCH until the deadline, seen in the broker
                # restart test): a new client starts from fresh metadata
                self._admin = AdminClient(admin_config(self.settings, self.client_id))
                renew_at = time.monotonic() + _RENEW_AFTER_S
            request = {RdTopicPartition(t, p): spec for (t, p), spec in todo.items()}
            futures = self._admin.list_offsets(
                request, isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=_TIMEOUT
            )
            retry: dict[TopicPartition, OffsetSpec] = {}
            for tp, future in futures.items():
                key = (tp.topic, tp.partition)
                try:
                    out[key] = future.result().offset
                except KafkaException as e:
                    err = e.args[0]
                    settling = err.retriable() or err.code() in _SETTLING
                    if not settling or time.monotonic() > deadline:
                        raise BusError(f"offsets of {tp.topic}[{tp.partition}]: {e}") from None
                    retry[key] = todo[key]
            todo = retry
            if todo:
                time.sleep(0.05)
        return out

    def bounds(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, tuple[int, int]]:
        """(log start offset, last stable offset) per partition."""
        low = self._offsets(tps, _EARLIEST)
        high = self._offsets(tps, _LATEST)
        return {tp: (low[tp], max(low[tp], high[tp])) for tp in tps}

    def watermarks(self, topic: str) -> dict[int, tuple[int, int]]:
        partitions = self._parts.get(topic) or self._describe(topic)
        if partitions is None:
            return {}
        marks = self.bounds([(topic, p) for p in range(partitions)])
        return {p: marks[(topic, p)] for p in range(partitions)}

    def wait_visible(self, written: Mapping[TopicPartition, int]) -> None:
        """Wait (bounded) until read_committed readers can see offsets up to ``written``."""
        if not written:
            return
        deadline = time.monotonic() + _VISIBLE_WAIT
        todo = dict(written)
        while todo and time.monotonic() < deadline:
            try:
                stable = self._offsets(list(todo), _LATEST)
            except BusError as exc:  # the transaction is committed; seeing it is a courtesy
                log.warning("cannot confirm committed outputs are visible yet: %s", exc)
                return
            todo = {tp: o for tp, o in todo.items() if stable[tp] <= o}
            if todo:
                time.sleep(0.002)

    @property
    def address(self) -> str:
        """The bootstrap servers (:class:`~logfactory.bus.base.Reachable`)."""
        return self.settings.bootstrap

    def reachable(self, timeout: float) -> bool:
        """Whether a broker answers a metadata request within ``timeout`` seconds, asked on a
        client of its own (readers check this once, instead of waiting without a word)."""
        admin = AdminClient(admin_config(self.settings, self.client_id))
        try:
            admin.list_topics(timeout=timeout)
        except KafkaException:
            return False
        return True

    # -- groups ---------------------------------------------------------------------------
    def committed(self, group: str, topic: str) -> dict[int, int]:
        """Through :class:`~logfactory.bus.kafka.group_offsets.GroupOffsets`, never the admin
        API, which crashes the process on a NOT_COORDINATOR answer (librdkafka#5040)."""
        partitions = self._parts.get(topic) or self._describe(topic)
        if partitions is None:
            return {}
        done = self._group_offsets.read(group, [(topic, p) for p in range(partitions)])
        return {p: o for (_t, p), o in done.items()}

    def groups(self) -> list[str]:
        try:
            result = self._admin.list_consumer_groups(request_timeout=_TIMEOUT).result()
        except KafkaException as e:
            raise BusError(f"cannot list consumer groups: {e}") from None
        return sorted(g.group_id for g in result.valid)

    # -- clients --------------------------------------------------------------------------
    def producer(self, *, patient: bool = False) -> KafkaProducer:
        return KafkaProducer(self, patient=patient)

    def consumer(
        self, group: str | None, topics: Sequence[str], start: StartFrom = "earliest"
    ) -> KafkaConsumer:
        """A consumer; with a stable transactional id its transactional producer is set up
        *before* the group is joined. That fences a crashed predecessor and completes or aborts
        its open transaction, so reading the committed offsets (which must wait for pending
        transactional commits to settle) does not wait for that transaction to time out."""
        txn = None
        if group is not None and self.settings.transactional_id is not None:
            txn = TxnProducer(self, self.txn_id(group))
        return KafkaConsumer(self, group, topics, start, txn)

    def transaction(self, consumer: object) -> KafkaTransaction:
        if not isinstance(consumer, KafkaConsumer):
            raise BusError("a Kafka transaction needs a consumer of the Kafka bus")
        return KafkaTransaction(self, consumer)

    def txn_id(self, group: str | None) -> str:
        """``<prefix>.<group>.<n>``: stable across restarts when the bus has a prefix."""
        prefix = self.settings.transactional_id
        name = group or "nogroup"
        if prefix is None:
            return f"{self.client_id}.{name}.{uuid.uuid4().hex}"
        seq = self._txn_seq.setdefault(name, itertools.count())
        return f"{prefix}.{name}.{next(seq)}"

    # -- maintenance ----------------------------------------------------------------------
    def maintain(self) -> dict[str, int]:
        """Apply retention and compaction now; return how many messages each topic dropped."""
        return maintain(self, self._admin, self._maint_state)

    def close(self) -> None:
        self._parts.clear()
        self._group_offsets.close()
        close_maintenance(self._maint_state)
