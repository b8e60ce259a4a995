"""The embedded bus: a durable, partitioned log in one SQLite database (WAL mode).

Why SQLite: it gives several processes on one machine a crash-safe shared log with real
transactions and nothing to install, and a transaction that both appends outputs and stores
input offsets is exactly-once on one machine.

Layout. One table per topic whose integer primary key packs ``partition << 40 | offset``, so a
partition is one contiguous, ordered range of the table's b-tree and reading is a range scan.
A row holds one message or, outside compacted topics, a packed run of consecutive messages
appended together (keyed by the first one's offset; ``n`` says how many; see
:mod:`logfactory.bus.local_batch`).
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

import itertools
import operator
import random
import sqlite3
import zlib
from collections.abc import Sequence
from pathlib import Path

from logfactory.bus.base import BusError, StartFrom, TopicSpec
from logfactory.bus.local_batch import groups, pack
from logfactory.bus.local_consumer import LocalConsumer, LocalTransaction
from logfactory.bus.local_db import (
    DB_NAME,
    MAX_OFFSET,
    MAX_PARTITIONS,
    TOPIC_TABLE,
    DamagedBusError,
    Db,
    Entry,
    MissingBusError,
    damaged_text,
    init_schema,
    integrity_problems,
    marks,
    now_ms,
    rid_of,
)
from logfactory.bus.local_maintenance import maintain
from logfactory.bus.local_marker import bind_marker, lost_error, read_marker, refuse_if_gone
from logfactory.bus.local_producer import LocalProducer
from logfactory.bus.local_writer import OffloadProducer

__all__ = [
    "DamagedBusError",
    "LocalBus",
    "LocalConsumer",
    "LocalProducer",
    "LocalTransaction",
    "MissingBusError",
]


_KEY = operator.itemgetter(1)
_VALUE = operator.itemgetter(2)
_ROWS_PER_INSERT = 16  # measured: 16 rows a statement beat 1, 8 and 32 (and stays far below
# SQLite's limit of bound variables)
_MULTI = ",".join(["(?,?,?,?)"] * _ROWS_PER_INSERT)


def _insert_rows(c: sqlite3.Connection, tid: int, flat: list[object]) -> None:
    """Insert rows given as one flat list of (rid, time, key, value) values into ``t<tid>``."""
    step = 4 * _ROWS_PER_INSERT
    full = len(flat) // step * step
    if full:
        c.executemany(
            f"INSERT INTO t{tid} (rid, ts, key, value) VALUES {_MULTI}",
            [flat[i : i + step] for i in range(0, full, step)],
        )
    if full < len(flat):
        c.executemany(
            f"INSERT INTO t{tid} (rid, ts, key, value) VALUES (?,?,?,?)",
            [flat[i : i + 4] for i in range(full, len(flat), 4)],
        )


def _insert_packed(
    c: sqlite3.Connection, tid: int, first: int, now: int, entries: Sequence[Entry]
) -> int:
    """Insert ``entries`` (consecutive offsets from rid ``first``) as packed rows of several
    messages each (:mod:`logfactory.bus.local_batch`); their value bytes, for ``heads``."""
    rows: list[tuple[int, int, bytes | None, bytes, int, int | None]] = []
    rid, total = first, 0
    for run in groups(entries):
        n = len(run)
        if n == 1:
            size = len(run[0][2])
            rows.append((rid, now, run[0][1], run[0][2], 1, None))
        else:
            size = sum(len(e[2]) for e in run)
            rows.append((rid, now, None, pack([(e[1], e[2]) for e in run]), n, size))
        total += size
        rid += n
    c.executemany(f"INSERT INTO t{tid} VALUES (?,?,?,?,?,?)", rows)
    return total


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
        self._topic_cache: dict[str, tuple[int, int]] = {}
        self._compacted: set[str] = set()  # topics whose rows stay one message each
        self._rr = itertools.count(random.randrange(1 << 20))
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
        info = self._topic(spec.name, create=False)
        if info is not None:
            return info[1]
        if not spec.name or not 1 <= spec.partitions <= MAX_PARTITIONS:
            raise BusError(f"topic {spec.name!r}: needs a name and 1..{MAX_PARTITIONS} partitions")
        with self._db.write() as c:
            row = c.execute("SELECT partitions FROM topics WHERE name=?", (spec.name,)).fetchone()
            if row is not None:
                return int(row[0])
            (next_id,) = c.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM topics").fetchone()
            c.execute(
                "INSERT INTO topics VALUES (?,?,?,?,?,?)",
                (
                    spec.name,
                    next_id,
                    spec.partitions,
                    int(spec.compact),
                    spec.retention_ms,
                    spec.retention_bytes,
                ),
            )
            c.execute(TOPIC_TABLE.format(tid=next_id))
            if spec.compact:
                c.execute(f"CREATE INDEX t{next_id}_key ON t{next_id}(key, rid)")
            c.executemany(
                "INSERT INTO heads (topic, partition, next) VALUES (?,?,0)",
                [(spec.name, p) for p in range(spec.partitions)],
            )
        return spec.partitions

    def _topic(self, name: str, create: bool = True) -> tuple[int, int] | None:
        """(table id, partitions) of a topic; auto-created with defaults when ``create``."""
        cached = self._topic_cache.get(name)
        if cached is not None:
            return cached
        rows = self._db.query("SELECT id, partitions, compact FROM topics WHERE name=?", (name,))
        row = rows[0] if rows else None
        if row is None:
            if not create:
                return None
            self.ensure_topic(TopicSpec(name, self.default_partitions))
            return self._topic(name, create=False)
        info = (int(row[0]), int(row[1]))
        if row[2]:
            self._compacted.add(name)
        self._topic_cache[name] = info
        return info

    def topic_info(self, name: str) -> tuple[int, int]:
        """(table id, partitions); creates the topic with the defaults if it does not exist."""
        info = self._topic_cache.get(name) or self._topic(name)
        if info is None:  # pragma: no cover - _topic(create=True) always answers
            raise BusError(f"topic {name!r} could not be created")
        return info

    def topics(self) -> dict[str, int]:
        rows = self._db.query("SELECT name, partitions FROM topics")
        return {str(n): int(p) for n, p in rows}

    def watermarks(self, topic: str) -> dict[int, tuple[int, int]]:
        info = self._topic(topic, create=False)
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
        child process (:mod:`logfactory.bus.local_writer_process`), so a busy producing process (a
        collector) keeps its own core for itself."""
        if offload:
            return OffloadProducer(self, max_buffered=max_buffered)
        return LocalProducer(self, max_buffered=max_buffered)

    def consumer(
        self, group: str | None, topics: Sequence[str], start: StartFrom = "earliest"
    ) -> LocalConsumer:
        return LocalConsumer(self, group, topics, start)

    def transaction(self, consumer: object) -> LocalTransaction:
        if not isinstance(consumer, LocalConsumer) or consumer.bus_path != self.path.resolve():
            raise BusError("a local-bus transaction needs a consumer of the same local bus")
        return LocalTransaction(self, consumer)

    def _append(self, c: sqlite3.Connection, batch: Sequence[Entry]) -> None:
        """Append messages inside the caller's write transaction, in the given order.

        Package-internal: the producer's writer thread and transactions call it, so appends
        share this bus's topic cache and round-robin counter. Topics were resolved when the
        messages were queued, so this never creates one (which would wait on the very write
        lock this transaction holds).

        This is the embedded bus's hot path (a collector appends every line here), so the
        per-message Python work is kept to placing the message in its partition's list. Then,
        partition by partition (the b-tree only ever appends), consecutive messages share
        packed rows (:mod:`logfactory.bus.local_batch`: a row costs the same whatever it
        holds); compacted topics keep one message a row, inserted ``_ROWS_PER_INSERT`` to a
        statement, which halves the sqlite3 module's parameter binding.
        """
        now = now_ms()
        cache = self._topic_cache
        rr = self._rr
        crc32 = zlib.crc32
        compacted = self._compacted
        per_topic: dict[str, tuple[int, list[list[Entry]]]] = {}
        for entry in batch:
            topic, key, _value = entry
            slot = per_topic.get(topic)
            if slot is None:
                info = cache.get(topic) or self._topic(topic, create=False)
                if info is None:
                    raise BusError(f"topic {topic!r} does not exist")
                slot = per_topic[topic] = (info[0], [[] for _ in range(info[1])])
            parts = slot[1]
            # partition_for_key, inlined
            parts[crc32(key) % len(parts) if key is not None else next(rr) % len(parts)].append(
                entry
            )
        updates: list[tuple[int, int, str, int]] = []
        for topic, (tid, parts) in per_topic.items():
            for p, entries in enumerate(parts):
                if not entries:
                    continue
                row = c.execute(
                    "SELECT next, bytes FROM heads WHERE topic=? AND partition=?", (topic, p)
                ).fetchone()
                if row is None:
                    raise BusError(f"topic {topic!r} has no partition {p}")
                start, size, count = int(row[0]), int(row[1]), len(entries)
                if start + count > MAX_OFFSET + 1:
                    raise BusError(f"{topic}[{p}] is full ({MAX_OFFSET} offsets)")
                first = rid_of(p, start)
                if count > 1 and topic not in compacted:
                    size += _insert_packed(c, tid, first, now, entries)
                else:
                    values = list(map(_VALUE, entries))
                    rows = zip(
                        range(first, first + count),
                        itertools.repeat(now),
                        map(_KEY, entries),
                        values,
                    )
                    _insert_rows(c, tid, list(itertools.chain.from_iterable(rows)))
                    size += sum(map(len, values))
                updates.append((start + count, size, topic, p))
        c.executemany("UPDATE heads SET next=?, bytes=? WHERE topic=? AND partition=?", updates)

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
