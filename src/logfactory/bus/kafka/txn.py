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
from typing import Any, Protocol

from confluent_kafka import Consumer as RdConsumer
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import Producer as RdProducer
from confluent_kafka import TopicPartition as RdTopicPartition

from logfactory.bus.base import BusError, TopicPartition
from logfactory.bus.bounded_call import bounded_call
from logfactory.bus.kafka.config import txn_producer_config
from logfactory.bus.kafka.errors import error_name, raise_mapped
from logfactory.bus.kafka.sites import ClientSite

__all__ = ["GroupMember", "TxnProducer"]

_TIMEOUT = 30.0
# sending offsets takes milliseconds, seconds while a coordinator moves; librdkafka's own
# timeout comes first, the guard only catches a call that ignores it
_OFFSETS_TIMEOUT = 10.0
GUARD_S = _OFFSETS_TIMEOUT + 5.0
Entry = tuple[str, bytes | None, bytes]


class GroupMember(Protocol):
    """The consumer whose input offsets a transaction commits."""

    @property
    def group(self) -> str | None: ...

    @property
    def raw(self) -> RdConsumer: ...


class TxnProducer:
    """A transactional producer; ``broken`` once it is fenced or hit a fatal error."""

    def __init__(self, bus: ClientSite, transactional_id: str) -> None:
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
        self, consumer: GroupMember, batch: list[Entry], offsets: Mapping[TopicPartition, int]
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
