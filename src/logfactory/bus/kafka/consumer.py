"""The Kafka bus's consumer: a librdkafka group member (or a group-less reader) held to the
bus contract.

Why the bus resolves start offsets itself instead of leaving them to ``auto.offset.reset``:
the contract says a group resumes at its committed offset *clamped to the stored range* (a
group whose offset was deleted by retention resumes at the low watermark, even when it was
created with ``start="latest"``), and :meth:`position` must answer before the first fetch. So
on every assignment the consumer reads the group's committed offsets (require-stable, so
pending transactional commits count), clamps them to the watermarks, and assigns explicit
offsets.

Fencing. librdkafka runs rebalance callbacks only inside ``poll``, so a member that stopped
polling cannot learn from its callbacks that it lost its partitions; but librdkafka itself
leaves the group once ``max.poll.interval.ms`` passes without a poll. The consumer therefore
treats "no poll for max.poll.interval.ms" as fenced, as well as any partition revoked or lost
since it was assigned (per-partition assignment epochs), and the broker's own generation
checks (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, ...) map to :class:`FencedError` too.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import Consumer as RdConsumer
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import TopicPartition as RdTopicPartition

from logfactory.bus.base import BusError, FencedError, Message, StartFrom, TopicPartition
from logfactory.bus.bounded_call import bounded_call
from logfactory.bus.kafka.config import consumer_config
from logfactory.bus.kafka.errors import error_name, raise_mapped
from logfactory.bus.kafka.sites import ConsumerSite
from logfactory.bus.kafka.txn import TxnProducer

__all__ = ["KafkaConsumer"]

log = logging.getLogger(__name__)

_OFFSET_INVALID = -1001
_SLICE = 0.1  # longest wait inside one librdkafka consume call
# librdkafka's consumer close can retry its coordinator query forever when the coordinator does
# not answer (confluentinc/librdkafka#3740); after this long the close is left to finish alone
CLOSE_WAIT_S = 15.0
# errors a consumer reports while it recovers on its own (the broker restarts, a leader moves)
_TRANSIENT = frozenset(
    {
        "_PARTITION_EOF",
        "_TRANSPORT",
        "_ALL_BROKERS_DOWN",
        "_MAX_POLL_EXCEEDED",
        "_TIMED_OUT",
        "NOT_LEADER_FOR_PARTITION",
        "NOT_LEADER_OR_FOLLOWER",
        "LEADER_NOT_AVAILABLE",
        "UNKNOWN_TOPIC_OR_PART",
        "_UNKNOWN_PARTITION",
        "REQUEST_TIMED_OUT",
        "COORDINATOR_NOT_AVAILABLE",
        "NOT_COORDINATOR",
        "COORDINATOR_LOAD_IN_PROGRESS",
    }
)


class KafkaConsumer:
    """One librdkafka consumer. ``group=None`` reads every partition, commits nowhere."""

    def __init__(
        self,
        bus: ConsumerSite,
        group: str | None,
        topics: Sequence[str],
        start: StartFrom = "earliest",
        txn: TxnProducer | None = None,
    ) -> None:
        if not topics:
            raise BusError("a consumer needs at least one topic")
        self._bus = bus
        self._group = group
        self._start: StartFrom = start
        self._topics = list(topics)
        for topic in self._topics:
            bus.topic_partitions(topic)  # created with the defaults if missing (as LocalBus)
        # a group-less consumer still needs a group.id for librdkafka; it never joins it
        gid = group if group is not None else f"logfactory-nogroup-{uuid.uuid4().hex}"
        conf: dict[str, Any] = consumer_config(bus.settings, bus.client_id, gid, start)
        self._max_poll_s = int(conf.get("max.poll.interval.ms", 300_000)) / 1000.0
        self._positions: dict[TopicPartition, int] = {}  # own view; librdkafka's when valid
        self._consumed: dict[TopicPartition, int] = {}  # next offsets returned by poll
        self._epochs: dict[TopicPartition, int] = {}  # bumped on every assignment
        self._epoch = 0
        self._last_poll = time.monotonic()
        self._rebalanced = False
        self._closed = False
        self.txn = txn  # the transactional producer bound to this consumer, if any
        try:
            self._c = RdConsumer(conf)
        except KafkaException as e:
            raise BusError(f"cannot create a Kafka consumer: {e}") from None
        if group is None:
            self._assign_all()
        else:
            self._c.subscribe(
                self._topics,
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_revoke,
            )

    # -- assignment -----------------------------------------------------------------------
    @property
    def group(self) -> str | None:
        return self._group

    @property
    def raw(self) -> RdConsumer:
        """The librdkafka consumer (for the transaction's group metadata)."""
        return self._c

    def _start_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        """Committed offsets clamped to the stored range, else ``start``'s end of it."""
        committed: dict[TopicPartition, int] = {}
        if self._group is not None and tps:
            try:
                got = self._c.committed([RdTopicPartition(t, p) for t, p in tps], timeout=30)
            except KafkaException as e:
                raise BusError(f"group {self._group!r}: cannot read committed offsets: {e}") from e
            committed = {(x.topic, x.partition): x.offset for x in got if x.offset >= 0}
        out: dict[TopicPartition, int] = {}
        bounds = self._bus.bounds(tps)
        for tp in tps:
            low, high = bounds[tp]
            done = committed.get(tp)
            if done is not None:
                out[tp] = min(max(done, low), high)
            else:
                out[tp] = low if self._start == "earliest" else high
        return out

    def _take(self, tps: Sequence[TopicPartition]) -> list[RdTopicPartition]:
        starts = self._start_offsets(tps)
        for tp, offset in starts.items():
            self._epoch += 1
            self._epochs[tp] = self._epoch
            self._positions[tp] = offset
        return [RdTopicPartition(t, p, o) for (t, p), o in starts.items()]

    def _assign_all(self) -> None:
        tps = [(t, p) for t in self._topics for p in range(self._bus.topic_partitions(t))]
        self._c.assign(self._take(tps))

    def _on_assign(self, consumer: RdConsumer, partitions: list[RdTopicPartition]) -> None:
        self._rebalanced = True
        consumer.assign(self._take([(x.topic, x.partition) for x in partitions]))

    def _on_revoke(self, consumer: RdConsumer, partitions: list[RdTopicPartition]) -> None:
        for x in partitions:
            tp = (x.topic, x.partition)
            self._epochs.pop(tp, None)
            self._positions.pop(tp, None)
            self._consumed.pop(tp, None)
        consumer.unassign()

    def assignment(self) -> list[TopicPartition]:
        self._check_open()
        return sorted(self._epochs)

    def epochs(self) -> dict[TopicPartition, int]:
        """Per assigned partition, the epoch of its current assignment (for transactions)."""
        return dict(self._epochs)

    # -- reading --------------------------------------------------------------------------
    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Message]:
        self._check_open()
        raw = self._consume(max(1, max_records), max(timeout, 0.0))
        out: list[Message] = []
        consumed = self._consumed
        epochs = self._epochs
        for m in raw:
            err = m.error()
            if err is not None:
                self._on_error(err)
                continue
            # librdkafka sets topic, partition and offset on every non-error message
            topic: str = m.topic()
            partition: int = m.partition()
            offset: int = m.offset()
            tp = (topic, partition)
            if tp not in epochs:  # fetched before a revoke was processed
                continue
            value = m.value()
            out.append(
                Message(
                    topic,
                    partition,
                    offset,
                    m.key(),
                    value if value is not None else b"",
                    m.timestamp()[1],
                )
            )
            consumed[tp] = offset + 1
        for tp, nxt in consumed.items():
            self._positions[tp] = nxt
        return out

    def _consume(self, count: int, wait: float) -> list[Any]:
        """librdkafka's consume, in slices so that an empty poll can end early; returns as soon
        as there is one message (the contract: wait at most ``wait`` for the *first*).

        * A rebalance inside the call restarts the wait: new partitions are fetched only after
          the assignment, and "nothing came" should still mean "nothing is there".
        * If the position moved over transaction markers (which are not messages), the call
          returns at once with nothing, so a caller waiting for a position sees it promptly.
        """
        now = time.monotonic()
        self._last_poll = now
        deadline = now + wait
        restarts = 2
        before: list[int] | None = None
        while True:
            self._rebalanced = False
            step = min(deadline - time.monotonic(), _SLICE)
            try:
                # wait for the first message only, then take what is already fetched: librdkafka
                # would otherwise hold a part batch until ``count`` arrive or the wait ends,
                # which at low rates adds the whole wait to every record's latency
                raw = self._c.consume(1, max(step, 0.0))
                if raw and count > 1:
                    raw += self._c.consume(count - 1, 0)
            except KafkaException as e:
                raise_mapped(e.args[0], "poll")
            self._last_poll = time.monotonic()
            if raw:
                return list(raw)
            if self._rebalanced and restarts:
                restarts -= 1
                before = None
                deadline = time.monotonic() + wait
                continue
            if time.monotonic() >= deadline:
                return []
            marks = [x.offset for x in self._c.position(self._rd_assigned())]
            if before is None:
                before = marks
            elif marks != before:
                return []

    def _rd_assigned(self) -> list[RdTopicPartition]:
        return [RdTopicPartition(t, p) for t, p in self._epochs]

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            raise_mapped(err, "consumer (fatal)")
        if error_name(err) in _TRANSIENT or err.retriable():
            return
        raise_mapped(err, "poll")

    def position(self) -> dict[TopicPartition, int]:
        self._check_open()
        mine = {tp: self._positions[tp] for tp in self._epochs if tp in self._positions}
        if mine:
            # librdkafka steps over transaction markers, which the bus never sees as messages;
            # its position is invalid after an assign or seek until the next fetch
            for x in self._c.position([RdTopicPartition(t, p) for (t, p) in mine]):
                if x.offset != _OFFSET_INVALID:
                    mine[(x.topic, x.partition)] = x.offset
        return mine

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._check_open()
        if tp not in self._epochs:
            raise BusError(f"{tp[0]}[{tp[1]}] is not assigned to this consumer")
        if offset < 0:
            raise BusError(f"cannot seek to negative offset {offset}")
        target = RdTopicPartition(tp[0], tp[1], int(offset))
        try:
            self._c.seek(target)
        except KafkaException:
            # a freshly assigned partition cannot seek before its fetcher started: assign anew
            where = self.position()
            where[tp] = int(offset)
            try:
                self._c.assign([RdTopicPartition(t, p, o) for (t, p), o in where.items()])
            except KafkaException as e:
                raise BusError(f"seek {tp[0]}[{tp[1]}] to {offset}: {e}") from e
            self._positions.update(where)
        self._positions[tp] = int(offset)
        self._consumed.pop(tp, None)

    # -- committing -----------------------------------------------------------------------
    def check_owner(
        self, tps: Sequence[TopicPartition], held: Mapping[TopicPartition, int]
    ) -> None:
        """Raise FencedError unless this member still owns ``tps`` under the epochs ``held``."""
        if time.monotonic() - self._last_poll > self._max_poll_s:
            raise FencedError(
                f"group {self._group!r}: no poll for longer than max.poll.interval.ms "
                f"({self._max_poll_s:g} s); this member has left the group"
            )
        for tp in tps:
            now = self._epochs.get(tp)
            if now is None or held.get(tp, now) != now:
                raise FencedError(f"group {self._group!r}: this member no longer owns {tp}")

    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Synchronous commit of next-offsets; fenced on ownership; a no-op without a group."""
        self._check_open()
        if self._group is None:
            return
        todo = dict(self._consumed) if offsets is None else dict(offsets)
        if not todo:
            return
        self.check_owner(list(todo), self._epochs)
        try:
            result = self._c.commit(
                offsets=[RdTopicPartition(t, p, int(o)) for (t, p), o in todo.items()],
                asynchronous=False,
            )
        except KafkaException as e:
            raise_mapped(e.args[0], f"commit to group {self._group!r}")
        for x in result or []:
            if x.error is not None:
                raise_mapped(x.error, f"commit {x.topic}[{x.partition}]")

    # -- closing --------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise BusError("consumer is closed")

    def close(self) -> None:
        """Leave the group at once (the others take over now, not after a session timeout)."""
        if self._closed:
            return
        self._closed = True
        if self.txn is not None:
            self.txn.close()
            self.txn = None
        if not bounded_call("kafka-consumer-close", CLOSE_WAIT_S, self._leave):
            log.warning(
                "consumer of group %r did not leave within %g s (its coordinator does not "
                "answer); left behind, the group drops it after session.timeout.ms",
                self.group, CLOSE_WAIT_S,
            )  # fmt: skip

    def _leave(self) -> None:
        with contextlib.suppress(KafkaException, RuntimeError):
            self._c.close()
