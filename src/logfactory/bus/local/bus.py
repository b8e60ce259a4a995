"""The embedded bus: a durable, partitioned log in one SQLite database (WAL mode).

Why SQLite: it gives several processes on one machine a crash-safe shared log with real
transactions and nothing to install, and a transaction that both appends outputs and stores
input offsets is exactly-once on one machine.

Layout. One table per topic whose integer primary key packs ``partition << 40 | offset``, so a
partition is one contiguous, ordered range of the table's b-tree and reading is a range scan.
A row holds one message or, outside compacted topics, a packed run of consecutive messages
appended together (keyed by the first one's offset; ``n`` says how many; see
:mod:`logfactory.bus.local.batch`).
``heads`` keeps, per partition, the next offset and the stored value bytes, so offsets never go
back (even after retention deleted every row) and size retention needs no scan. Writers take
SQLite's single write lock (``BEGIN IMMEDIATE``); appends are therefore totally ordered and a
reader never sees offset ``n + 1`` without ``n``.

Guarantees (held by ``tests/contract``):

* per partition, messages are read in the order they were appended; a key always maps to
  ``partition_for_key`` (CRC-32), in every process; keyless messages go round-robin;
* ``flush`` returns only once every earlier ``produce`` is committed to the database (durable
  across process crashes; across power loss only with ``fsync=True``). Producer write errors
  are sticky: every later ``produce``/``flush``/``close`` raises :class:`BusError`;
* a group's members share partitions: every member computes the same round-robin assignment
  over the sorted live members, releases what it should no longer own at its next poll, and
  takes a partition only once it is free. A member is dead when its process is gone (checked
  by pid *and* process start time, so zombies and reused pids count as gone) or it has not
  polled or committed for ``session_timeout_ms``; its leases are freed at once;
* every lease acquisition gets a fresh epoch; commits (plain or transactional) are fenced on
  (member, epoch), so a member that lost a partition - even one it has since taken back - gets
  :class:`FencedError` and writes nothing. A member that takes a partition starts at the
  group's committed offset, clamped to the stored range (deleted by retention: the low
  watermark), or at ``start`` when the group never committed;
* a transaction's outputs and offsets are one SQLite transaction: both or neither;
* ``maintain`` deletes by age and by size only a prefix of a partition, and compaction keeps
  the newest message per non-null key; offsets of the remaining messages never change.

Open a new :class:`LocalBus` in each process (SQLite connections do not survive ``fork``). All
processes must share one pid namespace (one machine, one container).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from logfactory.bus.base import BusError, StartFrom, TopicSpec
from logfactory.bus.local.append import Appender
from logfactory.bus.local.consumer import LocalConsumer, LocalTransaction
from logfactory.bus.local.db import (
    DB_NAME,
    DamagedBusError,
    Db,
    MissingBusError,
    damaged_text,
    init_schema,
    integrity_problems,
    marks,
)
from logfactory.bus.local.heads import LocalHeads
from logfactory.bus.local.maintenance import maintain
from logfactory.bus.local.marker import bind_marker, lost_error, read_marker, refuse_if_gone
from logfactory.bus.local.producer import LocalProducer
from logfactory.bus.local.topics import TopicTable
from logfactory.bus.local.writer import OffloadProducer

__all__ = [
    "DamagedBusError",
    "LocalBus",
    "LocalConsumer",
    "LocalProducer",
    "LocalTransaction",
    "MissingBusError",
]


class LocalBus:
    """The embedded bus under ``directory``: created if missing, unless ``create=False``.

    Readers (``subscribe``, ``tail``, the SDK) pass ``create=False``: a bus that no node made
    raises :class:`MissingBusError` rather than being made empty and then waited on.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        fsync: bool = False,
        default_partitions: int = 4,
        session_timeout_ms: int = 10_000,
        create: bool = True,
    ) -> None:
        self.directory = Path(directory)
        if create:
            self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / DB_NAME
        self.fsync = fsync
        self.default_partitions = default_partitions
        self.session_timeout_ms = session_timeout_ms
        # a marked directory had a bus: its database missing or empty is a loss, never a start
        marker = read_marker(self.directory)
        refuse_if_gone(self.path, marker)
        self._db = Db(self.path, fsync, create=create)
        self._topics = TopicTable(self._db, default_partitions)
        self.appender = Appender(self._topics)
        """The append path the bus's producers, transactions and writer process share."""
        try:
            try:
                init_schema(self._db, self.path, create=create and marker is None)
            except MissingBusError:
                if marker is not None:
                    raise lost_error(self.path, marker) from None
                raise
            bind_marker(self._db, self.directory, marker, write=create)
        except BaseException:
            self._db.close()
            raise

    # -- topics ---------------------------------------------------------------------------
    def ensure_topic(self, spec: TopicSpec) -> int:
        return self._topics.ensure(spec)

    def topic_info(self, name: str) -> tuple[int, int]:
        """(table id, partitions); creates the topic with the defaults if it does not exist."""
        return self._topics.info(name)

    def topics(self) -> dict[str, int]:
        rows = self._db.query("SELECT name, partitions FROM topics")
        return {str(n): int(p) for n, p in rows}

    def watermarks(self, topic: str) -> dict[int, tuple[int, int]]:
        info = self._topics.find(topic)
        if info is None:
            return {}
        tid, partitions = info
        with self._db.read() as c:
            return {p: marks(c, topic, tid, p) for p in range(partitions)}

    def committed(self, group: str, topic: str) -> dict[int, int]:
        rows = self._db.query(
            "SELECT partition, next FROM offsets WHERE grp=? AND topic=?", (group, topic)
        )
        return {int(p): int(n) for p, n in rows}

    def groups(self) -> list[str]:
        rows = self._db.query("SELECT grp FROM offsets UNION SELECT grp FROM members ORDER BY 1")
        return [str(r[0]) for r in rows]

    def lag(self, group: str) -> dict[str, int]:
        """Messages not yet committed by ``group``, per topic it has committed on."""
        out: dict[str, int] = {}
        rows = self._db.query("SELECT DISTINCT topic FROM offsets WHERE grp=?", (group,))
        topics = [str(r[0]) for r in rows]
        for topic in topics:
            bounds = self.watermarks(topic)
            done = self.committed(group, topic)
            out[topic] = sum(
                max(0, hi - max(done.get(p, lo), lo)) for p, (lo, hi) in bounds.items()
            )
        return out

    # -- clients --------------------------------------------------------------------------
    def producer(
        self, *, max_buffered: int = 100_000, patient: bool = False, offload: bool = False
    ) -> LocalProducer | OffloadProducer:
        """``patient`` is accepted for the bus contract and ignored: local writes never time
        out (a failed write is an error, not a wait). ``offload``: the SQLite appends run in a
        child process (:mod:`logfactory.bus.local.writer_process`), so a busy producing process (a
        collector) keeps its own core for itself."""
        if offload:
            return OffloadProducer(self, max_buffered=max_buffered)
        return LocalProducer(self, max_buffered=max_buffered)

    def offload_producer(self, *, max_buffered: int = 100_000) -> OffloadProducer:
        """The producer a node's collectors use (:class:`~logfactory.bus.base.Offloading`):
        ``producer(offload=True)``."""
        return OffloadProducer(self, max_buffered=max_buffered)

    def head_reader(self) -> LocalHeads:
        """A view of the write heads for a watcher (:class:`~logfactory.bus.base.HeadWatch`)."""
        return LocalHeads(self.path, self.fsync)

    def consumer(
        self, group: str | None, topics: Sequence[str], start: StartFrom = "earliest"
    ) -> LocalConsumer:
        return LocalConsumer(self, group, topics, start)

    def transaction(self, consumer: object) -> LocalTransaction:
        if not isinstance(consumer, LocalConsumer) or consumer.bus_path != self.path.resolve():
            raise BusError("a local-bus transaction needs a consumer of the same local bus")
        return LocalTransaction(self, consumer)

    # -- maintenance ----------------------------------------------------------------------
    def verify(self) -> None:
        """Read every page once (SQLite's ``quick_check``) and raise :class:`DamagedBusError`
        if any is damaged. A node calls it at start, so a damaged bus refuses the start with
        the way out (``logfactory bus repair``) instead of failing later, in a component, on
        whichever page it reads first. It costs a read of the whole file (0.13 s for 256 MB
        the OS had cached), so it is the node's, once at start, not every opener's."""
        with self._db.lock:
            self._db.check()
            problems = integrity_problems(self._db.conn, "quick_check", limit=3)
        if problems:
            detail = f"SQLite's quick_check: {'; '.join(problems)}"
            raise DamagedBusError(damaged_text(self.path, detail))

    def maintain(self) -> dict[str, int]:
        """Apply retention and compaction, one short write transaction per partition and step.

        Every step costs in proportion to what it deletes (plus, for compaction, what was
        appended since the last run), never to the size of the topic.
        """
        return maintain(self._db)

    def close(self) -> None:
        self._db.close()
