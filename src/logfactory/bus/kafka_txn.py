"""Transactions on the Kafka bus: consume-transform-produce, exactly once.

Why outputs are buffered until the ``with`` block ends: an exception inside the block must
leave no trace at all, and a transaction the broker aborts still leaves an abort marker (one
offset) in every partition it wrote to. Sending nothing before the block succeeded keeps
aborted work invisible even in the watermarks, and keeps the broker-side transaction as short
as one round of produce + commit.

Order inside the broker transaction: the input offsets are sent *first*
(``send_offsets_to_transaction`` with the consumer's group metadata, so the group coordinator
checks the member's generation, KIP-447); a fenced member therefore fails before any output
partition joins the transaction, and the abort touches none of them.

librdkafka's ``send_offsets_to_transaction`` can block for ever, past its own timeout, when the
group coordinator goes away mid-transaction (confluentinc/librdkafka#5456 and #5511: a stopped
broker stays cached as coordinator). The call therefore runs on a helper thread with a deadline;
a call that overstays it leaves the producer ``abandoned`` (never touched again, its thread
left to finish alone) and raises :class:`BusError`, so the worker is rebuilt and its new
producer, under the same ``transactional.id``, fences the stuck one's open transaction.

One transactional producer per consumer, created on first use. Its ``transactional.id`` is
``<prefix>.<group>.<n>`` when the bus has a stable prefix (a restarted worker then aborts its
crashed predecessor's open transaction at once, instead of read_committed readers waiting for
``transaction.timeout.ms``), else unique per consumer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import Producer as RdProducer
from confluent_kafka import TopicPartition as RdTopicPartition

from logfactory.bus.base import BusError, TopicPartition
from logfactory.bus.bounded_call import bounded_call
from logfactory.bus.kafka_config import txn_producer_config
from logfactory.bus.kafka_consumer import KafkaConsumer, error_name, raise_mapped

if TYPE_CHECKING:
    from logfactory.bus.kafka import KafkaBus

__all__ = ["KafkaTransaction", "TxnProducer"]

_TIMEOUT = 30.0
# sending offsets takes milliseconds, seconds while a coordinator moves; librdkafka's own
# timeout comes first, the guard only catches a call that ignores it
_OFFSETS_TIMEOUT = 10.0
GUARD_S = _OFFSETS_TIMEOUT + 5.0
Entry = tuple[str, bytes | None, bytes]


class TxnProducer:
    """A transactional producer; ``broken`` once it is fenced or hit a fatal error."""

    def __init__(self, bus: KafkaBus, transactional_id: str) -> None:
        conf: dict[str, Any] = dict(
            txn_producer_config(bus.settings, bus.client_id, transactional_id)
        )
        conf["on_delivery"] = self._delivered
        self.transactional_id = transactional_id
        self.broken = False
        self.abandoned = False
        self._closed = False
        self._high: dict[TopicPartition, int] = {}
        self._error: KafkaError | None = None
        try:
            self._p = RdProducer(conf)
            self._p.init_transactions(_TIMEOUT)
        except KafkaException as e:
            raise BusError(f"transactional producer {transactional_id!r}: {e}") from None

    def _delivered(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            if self._error is None:
                self._error = err
            return
        tp = (msg.topic(), msg.partition())
        if msg.offset() > self._high.get(tp, -1):
            self._high[tp] = msg.offset()

    def run(
        self, consumer: KafkaConsumer, batch: list[Entry], offsets: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, int]:
        """One broker transaction; returns the highest offset written per partition."""
        p = self._p
        self._high = {}
        self._error = None
        try:
            p.begin_transaction()

            if offsets and consumer.group is not None:
                self._guarded(
                    "send_offsets_to_transaction",
                    p.send_offsets_to_transaction,
                    [RdTopicPartition(t, n, int(o)) for (t, n), o in offsets.items()],
                    consumer.raw.consumer_group_metadata(),
                    _OFFSETS_TIMEOUT,
                )  # fmt: skip
            produce = p.produce
            for topic, key, value in batch:
                while True:
                    try:
                        if key is not None and not key:
                            produce(topic, value, key, partition=0)  # CRC-32 of b"" is 0
                        else:
                            produce(topic, value, key)
                        break
                    except BufferError:
                        p.poll(0.05)  # queue full: let deliveries drain
            p.commit_transaction(_TIMEOUT)
        except KafkaException as e:
            self._fail(e.args[0])
        except BaseException:
            if not self.abandoned:
                self._abort()
            raise
        return dict(self._high)

    def _guarded(self, what: str, call: Callable[..., object], *args: object) -> None:
        """``call(*args)`` with a deadline; BusError if it has not returned by GUARD_S."""
        if not bounded_call(f"kafka-{what}", GUARD_S, call, *args):
            self.broken = self.abandoned = True
            raise BusError(
                f"transaction {self.transactional_id!r}: {what} did not return within "
                f"{GUARD_S:g} s (its coordinator stopped answering); the producer is replaced"
            )

    def _abort(self) -> None:
        try:
            self._p.abort_transaction(_TIMEOUT)
        except KafkaException:
            self.broken = True

    def _fail(self, err: KafkaError) -> None:
        if err.fatal():
            self.broken = True
        elif err.txn_requires_abort() or error_name(err) != "_STATE":
            self._abort()
        raise_mapped(err, f"transaction {self.transactional_id!r}")

    def close(self) -> None:
        self.broken = True
        if self._closed:
            return
        self._closed = True
        if self.abandoned:
            return  # a call is still running inside it: flushing or freeing it could hang
        with contextlib.suppress(KafkaException, RuntimeError):
            self._p.flush(5.0)
        del self._p  # release librdkafka's threads and connections now, not at GC


class KafkaTransaction:
    """Outputs and input offsets of one batch; sent to the broker only when the block ends."""

    def __init__(self, bus: KafkaBus, consumer: KafkaConsumer) -> None:
        self._bus = bus
        self._consumer = consumer
        self._batch: list[Entry] = []
        self._offsets: dict[TopicPartition, int] = {}
        self._held = consumer.epochs()
        self._done = False

    def produce(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        if self._done:
            raise BusError("transaction already finished")
        self._batch.append((topic, key, value))

    def commit_offsets(self, offsets: Mapping[TopicPartition, int]) -> None:
        if self._done:
            raise BusError("transaction already finished")
        self._offsets.update(offsets)

    def __enter__(self) -> KafkaTransaction:
        self._held = self._consumer.epochs()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._done:
            return
        self._done = True
        if exc_type is not None or (not self._batch and not self._offsets):
            return  # nothing was sent, so nothing needs undoing
        consumer = self._consumer
        offsets = self._offsets if consumer.group is not None else {}
        if offsets:
            consumer.check_owner(list(offsets), self._held)
        for topic in {t for t, _k, _v in self._batch}:
            self._bus.topic_partitions(topic)
        producer = consumer.txn
        if producer is None:
            producer = TxnProducer(self._bus, self._bus.txn_id(consumer.group))
        elif producer.broken:  # fenced or fatal: a new instance under the same (stable) id
            producer.close()
            producer = TxnProducer(self._bus, producer.transactional_id)
        consumer.txn = producer
        written = producer.run(consumer, self._batch, offsets)
        self._bus.wait_visible(written)
