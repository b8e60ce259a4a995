"""The factory worker: one loop that takes a batch from ``logs.raw`` through all six stages.

intake -> sort -> decode -> filter -> process -> package, then one bus transaction that writes
every output of the batch (events, parsed records, dead letters, pattern-library changes and the
worker's own state) together with the input offsets. A crash at any point therefore either
loses the whole batch's effects (and it is read again) or keeps all of them: no event is lost or
duplicated, and event ids are derived from input positions so a replay reproduces them.

State that spans batches — open multi-line records and partial composite windows — is kept
per input partition and written to the compacted ``factory.state`` topic in the same
transaction as that partition's offset (``partition_state``), so whichever worker owns the
partition next, after a restart or a rebalance, resumes exactly from it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from logfactory.bus.base import Bus, Message, TopicPartition
from logfactory.config import Config
from logfactory.event import topic_for_type
from logfactory.factory.filter import FilterStage
from logfactory.factory.intake import read_record
from logfactory.factory.model import Decoded, DecodeError, Position
from logfactory.factory.package import INVALID_UTF8, Outputs, Packager
from logfactory.factory.partition_state import (
    PartitionState,
    StateFeed,
    WorkerState,
    state_encoder,
    state_key,
)
from logfactory.factory.patterns.library import PatternLibrary
from logfactory.factory.process.rules import ProcessStage
from logfactory.factory.sort import Sorter
from logfactory.factory.workshops import Workshop, build_workshops
from logfactory.record import Record, now_ns
from logfactory.stats import StatsRegistry
from logfactory.topics import PATTERNS, RAW, STATE, ensure_topics, event_types

__all__ = ["FactoryWorker"]

log = logging.getLogger(__name__)


_STAGES = ("intake", "sort", "decode", "filter", "process", "package")
_OUTCOMES = ("received", "sent", "dropped", "errors")
_COUNT_KEYS = tuple(f"{stage}.{outcome}" for stage in _STAGES for outcome in _OUTCOMES)


@dataclass(slots=True)
class _Prepared:
    """A processed batch waiting for its commit."""

    out: Outputs
    offsets: dict[TopicPartition, int]
    library_changes: list[tuple[bytes, bytes]]
    states: list[tuple[bytes, WorkerState]]
    counts: dict[str, int]
    pending_multiline: int
    open_windows: int


class FactoryWorker:
    """Runs the event factory for one member of the consumer group ``config.factory.group``."""

    EXPIRE_INTERVAL_S = 0.5  # stale windows, and how soon a review reaches this worker
    # How long past its timeout a held multi-line record may wait while the worker is behind
    # (its poll came back full: more input is waiting, maybe the record's next lines). Why:
    # the timeout is wall-clock time, and a backlog (after a restart, an outage, a burst) is
    # read much faster than it was written but not instantly: timing out while catching up
    # would cut traces whose next lines are already on the bus. The bound keeps a worker that
    # never catches up from holding records for ever.
    CATCH_UP_GRACE_NS = 30_000_000_000
    LIBRARY_COUNTS_INTERVAL_S = 10.0

    def __init__(self, config: Config, bus: Bus, registry: StatsRegistry) -> None:
        self.config = config
        self.bus = bus
        self.stats = registry
        ensure_topics(bus, config)
        self.workshops: dict[str, Workshop] = build_workshops(config)
        self.library = PatternLibrary()
        self.filter = FilterStage(config, self.library)
        self.packager = Packager({t: topic_for_type(t) for t in event_types(config)})
        self.group = config.factory.group
        self._restore_library()
        self._states = StateFeed(bus)
        self.consumer = bus.consumer(self.group, [RAW], "earliest")
        self.parts: dict[TopicPartition, PartitionState] = {}
        self._stopping: Callable[[], bool] = lambda: False  # set by run: ends long waits early
        self.on_commit: Callable[[], None] | None = None  # after every committed batch
        self._next_expire = 0.0
        self._counts: dict[str, int] = dict.fromkeys(_COUNT_KEYS, 0)
        self._next_counts = time.monotonic() + self.LIBRARY_COUNTS_INTERVAL_S

    # -- restart --------------------------------------------------------------------------
    def _restore_library(self) -> None:
        """Re-learn the shared pattern library."""
        # the library feed stays open: reviews made elsewhere reach this worker while it runs
        self._library_feed = self.bus.consumer(None, [PATTERNS], "earliest")
        ends = {(PATTERNS, p): hi for p, (_lo, hi) in self.bus.watermarks(PATTERNS).items()}
        feed = self._library_feed
        while any(feed.position().get(tp, 0) < hi for tp, hi in ends.items()):
            batch = feed.poll(5000, timeout=0.2)
            if not batch:
                break
            self._apply_library(batch)
        self.library.drain_changes()

    def _claim(self, batch: list[Message]) -> None:
        """Forget partitions lost since the last batch and load the state of new ones.

        Called after every poll: state built under an earlier assignment of a partition is
        stale (another worker may have advanced it meanwhile), so an epoch change drops it.
        """
        epochs = self.consumer.epochs()
        parts = self.parts
        for tp in [tp for tp, part in parts.items() if epochs.get(tp) != part.epoch]:
            del parts[tp]
        # every assigned partition, not only those in this batch: a partition whose input
        # has ended may hold lines (or windows) that only its timeout will emit
        new = ({(m.topic, m.partition) for m in batch} | epochs.keys()) - parts.keys()
        if not new:
            return
        self._states.catch_up(self._stopping)
        for tp in sorted(new):
            if tp not in epochs:
                continue  # revoked after the fetch; the commit of this batch will be fenced
            key = state_key(self.group, tp)
            part = PartitionState(
                epochs[tp], key, Sorter(self.config, self.workshops),
                ProcessStage(self.config.rules), WorkerState(),
            )  # fmt: skip
            part.restore(self._states.values.get(key))
            parts[tp] = part

    def _part(self, tp: TopicPartition) -> PartitionState:
        part = self.parts.get(tp)
        if part is None:  # a partition this worker was never given state for (not via poll)
            key = state_key(self.group, tp)
            part = PartitionState(
                self.consumer.epochs().get(tp, -1), key, Sorter(self.config, self.workshops),
                ProcessStage(self.config.rules), WorkerState(),
            )  # fmt: skip
            part.restore(None)
            self.parts[tp] = part
        return part

    def _apply_library(self, batch: list[Message]) -> None:
        for msg in batch:
            if msg.value:
                try:
                    self.library.apply(msg.value)
                except ValueError as exc:  # one bad entry must not keep the factory down
                    log.warning("skipping bad pattern entry at offset %s: %s", msg.offset, exc)

    def sync_library(self) -> int:
        """Apply library entries others wrote (reviews, other workers' discoveries); our own
        come back too and change nothing. Returns how many entries were read."""
        batch = self._library_feed.poll(1000, timeout=0)
        self._apply_library(batch)
        return len(batch)

    def close(self) -> None:
        self.consumer.close()
        self._library_feed.close()
        self._states.close()

    # -- the loop -------------------------------------------------------------------------
    def run(self, stop: threading.Event, idle_timeout: float = 0.05) -> None:
        """Process batches until ``stop`` is set; the batch in hand is always finished.

        Strictly sequential: committing batch N from a second thread while N+1 is processed
        was measured 25% slower (the GIL hand-offs cost more than SQLite's GIL-free writing
        saves), so poll, stages and commit take turns on one thread.
        """
        self._stopping = stop.is_set
        try:
            while not stop.is_set():
                timeout = idle_timeout
                deadline = self._next_deadline()
                if deadline is not None:  # wake when a held multi-line record is due
                    timeout = min(timeout, max(0.0, (deadline - now_ns()) / 1e9))
                batch = self.consumer.poll(self.config.factory.batch_size, timeout=timeout)
                self.process_batch(batch)
        finally:
            self.close()

    def process_batch(self, batch: list[Message]) -> Outputs:
        """All six stages for one batch, committed atomically with its input offsets."""
        prepared = self.prepare(batch)
        if prepared is None:
            return Outputs()
        self.commit(prepared)
        return prepared.out

    def _next_deadline(self) -> int | None:
        due = [d for part in self.parts.values() if (d := part.sorter.next_deadline()) is not None]
        return min(due) if due else None

    def prepare(self, batch: list[Message]) -> _Prepared | None:
        """Run the stages on ``batch``: everything its commit will write, or None if nothing."""
        self._claim(batch)
        parts = self.parts
        out = Outputs()
        counts = self._counts = dict.fromkeys(_COUNT_KEYS, 0)
        now = now_ns()
        offsets: dict[TopicPartition, int] = {}
        for msg in batch:
            offsets[(msg.topic, msg.partition)] = msg.offset + 1
            read = read_record(msg)
            counts["intake.received"] += 1
            if isinstance(read, str):
                counts["intake.dropped"] += 1
                self.packager.add_deadletter(
                    out, read, "intake", Position(msg.topic, msg.partition, msg.offset),
                    original=msg.value,
                )  # fmt: skip
                continue
            counts["intake.sent"] += 1
            record, position = read
            tp = (msg.topic, msg.partition)
            part = parts.get(tp) or self._part(tp)
            try:
                ready = part.sorter.feed(record, position, now)
            except DecodeError as exc:
                counts["sort.dropped"] += 1
                self.packager.add_deadletter(out, exc.reason, "sort", position, record)
                continue
            for rec, pos, workshop in ready:
                self._handle(out, part, rec, pos, workshop)
        # behind (a full batch): only records overdue by more than the catch-up grace time out
        behind = len(batch) >= self.config.factory.batch_size
        due = now - self.CATCH_UP_GRACE_NS if behind else now
        for part in self.parts.values():
            for rec, pos, workshop in part.sorter.flush_due(due):
                self._handle(out, part, rec, pos, workshop)
        self._timers(now)
        library_changes = self._library_changes()
        states: list[tuple[bytes, WorkerState]] = []
        for part in self.parts.values():
            state = part.current()
            if state != part.saved:
                part.saved = state
                states.append((part.key, state))
        if not offsets and not out.messages and not library_changes and not states:
            return None
        return _Prepared(
            out, offsets, library_changes, states, counts,
            sum(p.sorter.pending() for p in self.parts.values()),
            sum(p.process.open_windows() for p in self.parts.values()),
        )  # fmt: skip

    def _handle(
        self, out: Outputs, part: PartitionState, record: Record, position: Position, workshop: str
    ) -> None:
        counts = self._counts
        counts["sort.sent"] += 1
        try:
            parts = self.workshops[workshop].decode(record)
        except DecodeError as exc:
            counts["decode.dropped"] += 1
            self.packager.add_deadletter(out, exc.reason, "decode", position, record)
            return
        except Exception as exc:  # a workshop bug must cost one record, not the node
            log.exception("workshop %s failed on %s", workshop, position)
            counts["decode.errors"] += 1
            self.packager.add_deadletter(
                out, f"workshop {workshop} failed: {exc!r}", "decode", position, record
            )
            return
        counts["decode.sent"] += 1
        if record.raw is not None:  # decoded from U+FFFD text: say so (package keeps the bytes)
            parts.fields[INVALID_UTF8] = True
        decoded = Decoded(
            record=record,
            position=position,
            workshop=parts.workshop,
            time_ns=parts.time_ns,
            message=parts.message,
            fields=parts.fields,
        )
        # a bug in either stage costs one record; its letter names the stage that failed
        stage = "filter"
        try:
            drafts = self.filter.apply(decoded)
            if drafts:
                counts["filter.sent"] += len(drafts)
            else:
                counts["filter.dropped"] += 1  # known normal: kept in logs.parsed only
            stage = "process"
            composite = part.process.feed(decoded)
            if composite:
                counts["process.sent"] += len(composite)
                drafts += composite
        except Exception as exc:
            log.exception("%s failed on %s", stage, position)
            counts[f"{stage}.errors"] += 1
            self.packager.add_deadletter(out, f"{stage} failed: {exc!r}", stage, position, record)
            return
        if drafts:
            counts["package.received"] += len(drafts)
        self.packager.add_record(out, decoded, drafts)

    def _timers(self, now: int) -> None:
        mono = time.monotonic()
        if mono >= self._next_expire:
            for part in self.parts.values():
                part.process.expire(now)
            self.sync_library()
            self._next_expire = mono + self.EXPIRE_INTERVAL_S

    def commit(self, prepared: _Prepared) -> None:
        """Write a prepared batch and its input offsets in one transaction."""
        with self.bus.transaction(self.consumer) as tx:
            for topic, key, value in prepared.out.messages:
                tx.produce(topic, value, key)
            for key, value in prepared.library_changes:
                tx.produce(PATTERNS, value, key)
            for key, state in prepared.states:
                tx.produce(STATE, state_encoder.encode(state), key)
            if prepared.offsets:
                tx.commit_offsets(prepared.offsets)
        self._count(prepared)
        if self.on_commit is not None:
            self.on_commit()

    def _library_changes(self) -> list[tuple[bytes, bytes]]:
        include_counts = time.monotonic() >= self._next_counts
        if include_counts:
            self._next_counts = time.monotonic() + self.LIBRARY_COUNTS_INTERVAL_S
        return [
            (key.encode(), value)
            for key, value in self.library.drain_changes_keyed(include_counts=include_counts)
        ]

    def _count(self, prepared: _Prepared) -> None:
        out, counts = prepared.out, prepared.counts
        counts["sort.received"] = counts["intake.sent"]
        counts["decode.received"] = counts["sort.sent"]
        counts["filter.received"] = counts["process.received"] = counts["decode.sent"]
        counts["package.sent"] = sum(out.events_by_type.values())
        counts["package.dropped"] = counts["package.received"] - counts["package.sent"]
        s = self.stats
        for stage in _STAGES:
            s.add_many(
                f"stage:{stage}",
                **{outcome: counts[f"{stage}.{outcome}"] for outcome in _OUTCOMES},
            )
        for event_type, n in out.events_by_type.items():
            s.add(f"events:{event_type}", "sent", n)
        if out.deadletters:
            s.add("deadletter", "sent", out.deadletters)
        s.gauge("factory.pending_multiline", prepared.pending_multiline)
        s.gauge("factory.open_windows", prepared.open_windows)
