"""The factory worker: one loop that takes a batch from ``logs.raw`` through all six stages.

intake -> sort -> decode -> filter -> process -> package, then one bus transaction that writes
every output of the batch (events, parsed records, dead letters, pattern-library changes and the
worker's own state) together with the input offsets. A crash at any point therefore either
loses the whole batch's effects (and it is read again) or keeps all of them: no event is lost or
duplicated, and event ids are derived from input positions so a replay reproduces them.

State that spans batches — open multi-line records and partial composite windows — is written
to the compacted ``factory.state`` topic in the same transaction, so a restart resumes it too.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import msgspec

from logfactory.bus.base import Bus, Message, TopicPartition
from logfactory.config import Config
from logfactory.event import topic_for_type
from logfactory.factory.filter import FilterStage
from logfactory.factory.intake import read_record
from logfactory.factory.model import Decoded, DecodeError, Position
from logfactory.factory.package import Outputs, Packager
from logfactory.factory.patterns.library import PatternLibrary
from logfactory.factory.process.rules import ProcessStage
from logfactory.factory.sort import Sorter
from logfactory.factory.workshops.base import Workshop, build_workshops
from logfactory.record import Record, now_ns
from logfactory.stats import StatsRegistry
from logfactory.topics import PATTERNS, RAW, STATE, ensure_topics, event_types

__all__ = ["FactoryWorker", "WorkerState"]

log = logging.getLogger(__name__)


class WorkerState(msgspec.Struct):
    """What a worker must carry across a restart besides offsets."""

    sort: bytes = b""
    process: bytes = b""


_STAGES = ("intake", "sort", "decode", "filter", "process", "package")
_OUTCOMES = ("received", "sent", "dropped", "errors")
_COUNT_KEYS = tuple(f"{stage}.{outcome}" for stage in _STAGES for outcome in _OUTCOMES)


@dataclass(slots=True)
class _Prepared:
    """A processed batch waiting for its commit."""

    out: Outputs
    offsets: dict[TopicPartition, int]
    library_changes: list[tuple[bytes, bytes]]
    state: WorkerState | None
    counts: dict[str, int]
    pending_multiline: int
    open_windows: int


_state_encoder = msgspec.json.Encoder()
_state_decoder = msgspec.json.Decoder(WorkerState)


class FactoryWorker:
    """Runs the event factory for one member of the consumer group ``config.factory.group``."""

    EXPIRE_INTERVAL_S = 0.5  # stale windows, and how soon a review reaches this worker
    LIBRARY_COUNTS_INTERVAL_S = 10.0

    def __init__(self, config: Config, bus: Bus, registry: StatsRegistry) -> None:
        self.config = config
        self.bus = bus
        self.stats = registry
        ensure_topics(bus, config)
        self.workshops: dict[str, Workshop] = build_workshops(config)
        self.sorter = Sorter(config, self.workshops)
        self.library = PatternLibrary()
        self.filter = FilterStage(config, self.library)
        self.process = ProcessStage(config.rules)
        self.packager = Packager({t: topic_for_type(t) for t in event_types(config)})
        self.group = config.factory.group
        self.state_key = f"{self.group}".encode()
        self._restore()
        self.consumer = bus.consumer(self.group, [RAW], "earliest")
        self._last_state = WorkerState(self.sorter.snapshot(), self.process.snapshot())
        self._next_expire = 0.0
        self._counts: dict[str, int] = dict.fromkeys(_COUNT_KEYS, 0)
        self._next_counts = time.monotonic() + self.LIBRARY_COUNTS_INTERVAL_S

    # -- restart --------------------------------------------------------------------------
    def _read_all(self, topic: str) -> list[Message]:
        consumer = self.bus.consumer(None, [topic], "earliest")
        try:
            out: list[Message] = []
            ends = {(topic, p): hi for p, (_lo, hi) in self.bus.watermarks(topic).items()}
            while any(consumer.position().get(tp, 0) < hi for tp, hi in ends.items()):
                batch = consumer.poll(5000, timeout=0.2)
                if not batch:
                    break
                out += batch
            return out
        finally:
            consumer.close()

    def _restore(self) -> None:
        """Re-learn the shared pattern library and this group's in-flight state."""
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
        latest: bytes | None = None
        for msg in self._read_all(STATE):
            if msg.key == self.state_key:
                latest = msg.value
        if latest:
            try:
                state = _state_decoder.decode(latest)
                if state.sort:
                    self.sorter.restore(state.sort)
                if state.process:
                    self.process.restore(state.process)
            except (ValueError, msgspec.DecodeError) as exc:
                log.error("worker state unreadable, starting without it: %s", exc)

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

    # -- the loop -------------------------------------------------------------------------
    def run(self, stop: threading.Event, idle_timeout: float = 0.05) -> None:
        """Process batches until ``stop`` is set; the batch in hand is always finished.

        Strictly sequential: committing batch N from a second thread while N+1 is processed
        was measured 25% slower (the GIL hand-offs cost more than SQLite's GIL-free writing
        saves), so poll, stages and commit take turns on one thread.
        """
        try:
            while not stop.is_set():
                timeout = idle_timeout
                deadline = self.sorter.next_deadline()
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

    def prepare(self, batch: list[Message]) -> _Prepared | None:
        """Run the stages on ``batch``: everything its commit will write, or None if nothing."""
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
            try:
                ready = self.sorter.feed(record, position, now)
            except DecodeError as exc:
                counts["sort.dropped"] += 1
                self.packager.add_deadletter(out, exc.reason, "sort", position, record)
                continue
            for rec, pos, workshop in ready:
                self._handle(out, rec, pos, workshop)
        for rec, pos, workshop in self.sorter.flush_due(now):
            self._handle(out, rec, pos, workshop)
        self._timers(now)
        library_changes = self._library_changes()
        state = WorkerState(self.sorter.snapshot(), self.process.snapshot())
        state_changed = state != self._last_state
        if not offsets and not out.messages and not library_changes and not state_changed:
            return None
        self._last_state = state
        return _Prepared(
            out, offsets, library_changes, state if state_changed else None, counts,
            self.sorter.pending(), self.process.open_windows(),
        )  # fmt: skip

    def _handle(self, out: Outputs, record: Record, position: Position, workshop: str) -> None:
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
        decoded = Decoded(
            record=record,
            position=position,
            workshop=parts.workshop,
            time_ns=parts.time_ns,
            message=parts.message,
            fields=parts.fields,
        )
        try:
            drafts = self.filter.apply(decoded)
            if drafts:
                counts["filter.sent"] += len(drafts)
            else:
                counts["filter.dropped"] += 1  # known normal: kept in logs.parsed only
            composite = self.process.feed(decoded)
            if composite:
                counts["process.sent"] += len(composite)
                drafts += composite
        except Exception as exc:
            log.exception("filter/process failed on %s", position)
            counts["filter.errors"] += 1
            self.packager.add_deadletter(
                out, f"filter/process failed: {exc!r}", "filter", position, record
            )
            return
        if drafts:
            counts["package.received"] += len(drafts)
        self.packager.add_record(out, decoded, drafts)

    def _timers(self, now: int) -> None:
        mono = time.monotonic()
        if mono >= self._next_expire:
            self.process.expire(now)
            self.sync_library()
            self._next_expire = mono + self.EXPIRE_INTERVAL_S

    def commit(self, prepared: _Prepared) -> None:
        """Write a prepared batch and its input offsets in one transaction."""
        with self.bus.transaction(self.consumer) as tx:
            for topic, key, value in prepared.out.messages:
                tx.produce(topic, value, key)
            for key, value in prepared.library_changes:
                tx.produce(PATTERNS, value, key)
            if prepared.state is not None:
                tx.produce(STATE, _state_encoder.encode(prepared.state), self.state_key)
            if prepared.offsets:
                tx.commit_offsets(prepared.offsets)
        self._count(prepared)

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
