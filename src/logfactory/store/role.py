"""The store role: every parsed log and every event, from the bus into the store's engine.

A member of the consumer group ``store.group`` on ``logs.parsed`` and every ``events.<TYPE>``
topic of the configuration. It polls batches, turns each message into a
:class:`~logfactory.store.document.StoredDoc` (its origin, ``topic/partition/offset``, kept
with it) and adds them to the engine's writer.

The order of commits is the whole contract: the **engine** commits first (everything added is
durable and searchable), and only then the **bus** offsets, in one bus transaction with the
batch's dead letters. So a crash at any moment loses nothing: offsets never run ahead of what
the engine holds, and what the engine holds beyond them is read again and recognised by id
(the writer's idempotency), so nothing is stored twice. A dead letter is written at most once
per offset commit for the same reason.

The engine commits when ``store.commit_docs`` documents are pending, when
``store.commit_interval`` has passed since the first of them, or when the bus has nothing more
to give (idle): a record becomes searchable within about ``commit_interval``.

A value that does not decode is never dropped silently: it goes to ``logs.deadletter`` (stage
``store``, the reason, its position and its bytes in ``original_b64``), the shape the factory
writes there. So does a document the engine refuses for good (a writer that is a
:class:`~logfactory.store.engine.RefusingWriter` reports those after each ``add``): one such
record must not hold the whole batch back forever.

Errors are the runner's business (:mod:`logfactory.store.runner`): an engine that cannot take
writes raises :class:`~logfactory.errors.StoreUnavailable` out of :meth:`StoreRole.run`, and
the runner throws the role away and builds a new one from the committed offsets.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable

import msgspec

from logfactory.bus.base import Bus, GroupLag, Message, TopicPartition
from logfactory.config import Config
from logfactory.event import topic_for_type
from logfactory.record import now_ns
from logfactory.stats import StatsRegistry
from logfactory.store.document import StoredDoc, from_event, from_parsed
from logfactory.store.engine import Position, RefusingWriter, StoreWriter
from logfactory.topics import DEADLETTER, PARSED, ensure_topics, event_types

__all__ = ["STAGE", "StoreDeadLetter", "StoreRole", "store_topics"]

log = logging.getLogger(__name__)

STAGE = "store"
"""The ``stage`` of the dead letters the store writes."""

GROUP = "store"  # the stats group of the role's counters


class StoreDeadLetter(msgspec.Struct, omit_defaults=True):
    """A message the store could not read: the factory's dead-letter shape (``reason``,
    ``stage``, ``position``, ``original_b64``), so one reader of ``logs.deadletter`` reads all."""

    reason: str
    stage: str
    position: str
    original_b64: str


_letter = msgspec.json.Encoder()


def store_topics(config: Config) -> list[str]:
    """What the store reads: ``logs.parsed`` and every event type's topic."""
    return [PARSED, *(topic_for_type(t) for t in event_types(config))]


def _to_doc(msg: Message) -> StoredDoc | str:
    """The message as stored, or why it cannot be (the dead letter's reason)."""
    origin = f"{msg.topic}/{msg.partition}/{msg.offset}"
    try:
        if msg.topic == PARSED:
            return from_parsed(msg.value, origin)
        return from_event(msg.value, origin)
    except (msgspec.DecodeError, ValueError, TypeError, OverflowError) as exc:
        kind = "parsed record" if msg.topic == PARSED else "event"
        return f"not a {kind} the store can read: {exc}"


class StoreRole:
    """One member of the store's consumer group, writing through ``writer``; see the module
    docstring. ``run`` returns when ``stop`` is set, after the batch in hand is committed."""

    RETENTION_INTERVAL_S = 300.0
    GAUGE_INTERVAL_S = 5.0

    def __init__(
        self, config: Config, bus: Bus, writer: StoreWriter, registry: StatsRegistry
    ) -> None:
        self.config = config
        self.bus = bus
        self.writer = writer
        self.stats = registry
        ensure_topics(bus, config)
        self.consumer = bus.consumer(config.store.group, store_topics(config), "earliest")
        # after every committed batch, and when idle with nothing to commit: all is well
        self.on_commit: Callable[[], None] | None = None
        self._offsets: dict[TopicPartition, int] = {}
        self._letters: list[bytes] = []
        self._pending = 0  # documents added since the engine's last commit
        self._pending_new = 0
        self._first_pending = 0.0  # monotonic time of the oldest uncommitted message
        self._next_retention = 0.0  # at start, then every RETENTION_INTERVAL_S
        self._next_gauges = 0.0

    # -- the loop -----------------------------------------------------------------------------
    def run(self, stop: threading.Event, idle_timeout: float = 0.1) -> None:
        """Take batches until ``stop``; the batch in hand is always committed before return.
        Raises StoreUnavailable or BusError (the runner rebuilds the role)."""
        store = self.config.store
        try:
            while not stop.is_set():
                self._housekeeping()
                batch = self.consumer.poll(store.batch_size, timeout=idle_timeout)
                if batch:
                    self.take(batch)
                if self._due(idle=not batch):
                    self.commit()
                elif not batch and not self._offsets and self.on_commit is not None:
                    self.on_commit()  # idle, nothing held back: the engine is not in the way
            self.commit()
        finally:
            self.consumer.close()

    def take(self, batch: list[Message]) -> None:
        """Add a batch to the writer (not yet committed)."""
        if not self._offsets and batch:  # the first message since the last commit
            self._first_pending = time.monotonic()
        docs: list[tuple[Position, StoredDoc]] = []
        bad: list[tuple[Message, str]] = []
        for msg in batch:
            self._offsets[(msg.topic, msg.partition)] = msg.offset + 1
            doc = _to_doc(msg)
            if isinstance(doc, str):
                bad.append((msg, doc))
            else:
                docs.append(((msg.topic, msg.partition, msg.offset), doc))
        new = self.writer.add(docs) if docs else 0
        refused = self._refused(batch)
        bad += refused
        if bad:
            self._dead_letters(bad)
        self._pending += len(docs)
        self._pending_new += new
        duplicates = len(docs) - len(refused) - new
        self.stats.add_many(GROUP, received=len(batch), duplicates=duplicates)
        self.stats.gauge("store.pending", self._pending)

    def _refused(self, batch: list[Message]) -> list[tuple[Message, str]]:
        """The batch's messages the engine refused for good, with its reason."""
        if not isinstance(self.writer, RefusingWriter):
            return []
        refused = self.writer.take_refused()
        if not refused:
            return []
        by_position = {(m.topic, m.partition, m.offset): m for m in batch}
        return [(by_position[position], reason) for position, reason in refused]

    def _dead_letters(self, bad: list[tuple[Message, str]]) -> None:
        for msg, reason in bad:
            letter = StoreDeadLetter(
                reason=reason,
                stage=STAGE,
                position=f"{msg.topic}/{msg.partition}/{msg.offset}",
                original_b64=base64.b64encode(msg.value).decode("ascii"),
            )
            self._letters.append(_letter.encode(letter))
        msg, reason = bad[0]  # one line a batch: a topic full of junk must not flood the log
        log.warning("store: %d messages go to %s, the first (%s/%d/%d) because %s", len(bad),
                    DEADLETTER, msg.topic, msg.partition, msg.offset, reason)  # fmt: skip

    def _due(self, *, idle: bool) -> bool:
        if not self._offsets:
            return False
        store = self.config.store
        if idle or self._pending >= store.commit_docs:
            return True
        return time.monotonic() - self._first_pending >= store.commit_interval

    def commit(self) -> None:
        """The engine first, then the offsets and dead letters in one bus transaction."""
        if not self._offsets:
            return
        self.writer.commit()  # raises StoreUnavailable: nothing below happens, offsets stay
        with self.bus.transaction(self.consumer) as tx:
            for letter in self._letters:
                tx.produce(DEADLETTER, letter)
            tx.commit_offsets(self._offsets)
        letters = len(self._letters)
        self.stats.add_many(GROUP, stored=self._pending_new, deadletters=letters, commits=1)
        if letters:
            self.stats.add("deadletter", "sent", letters)  # the node's dead-letter total
        self._offsets, self._letters = {}, []
        self._pending = self._pending_new = 0
        self._first_pending = 0.0
        self.stats.gauge("store.pending", 0)
        if self.on_commit is not None:
            self.on_commit()

    # -- retention and gauges -----------------------------------------------------------------
    def _housekeeping(self) -> None:
        mono = time.monotonic()
        if mono >= self._next_retention:
            self._next_retention = mono + self.RETENTION_INTERVAL_S
            self.apply_retention()
        if mono >= self._next_gauges:
            self._next_gauges = mono + self.GAUGE_INTERVAL_S
            self._gauges()

    def apply_retention(self) -> None:
        """Drop what the retention limits say; logged and counted when anything went."""
        report = self.writer.apply_retention(now_ns())
        if report.dropped_partitions or report.dropped_docs:
            log.warning(
                "store retention: dropped %d records (%d bytes) in %s", report.dropped_docs,
                report.bytes_freed, ", ".join(report.dropped_partitions) or "no partition",
            )  # fmt: skip
            self.stats.add_many(GROUP, retention_dropped=report.dropped_docs)

    def _gauges(self) -> None:
        held = self.writer.stats()
        self.stats.gauge("store.docs", held.docs)
        self.stats.gauge("store.bytes", held.bytes)
        self.stats.gauge("store.partitions", held.partitions)
        if isinstance(self.bus, GroupLag):  # cheap where the bus computes it itself
            lag = self.bus.lag(self.config.store.group)
            self.stats.gauge("store.lag", sum(lag.values()))
