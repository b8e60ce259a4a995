"""The embedded bus: a durable, partitioned log in one SQLite database (WAL mode).

Why SQLite: it gives several processes on one machine a crash-safe shared log with real
transactions and nothing to install, and a transaction that both appends outputs and stores
input offsets is exactly-once on one machine.

Layout. One table per topic whose integer primary key packs ``partition << 40 | offset``, so a
partition is one contiguous, ordered range of the table's b-tree and reading is a range scan.
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
import os
import random
import sqlite3
import threading
import time
import uuid
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from logfactory.bus.base import (
    BusError,
    FencedError,
    Message,
    StartFrom,
    TopicPartition,
    TopicSpec,
)

__all__ = ["LocalBus", "LocalConsumer", "LocalProducer", "LocalTransaction"]

_SHIFT = 40
_MAX_OFFSET = (1 << _SHIFT) - 1
_MAX_PARTITIONS = 1 << 22
_SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE topics (
    name TEXT PRIMARY KEY, id INTEGER NOT NULL UNIQUE, partitions INTEGER NOT NULL,
    compact INTEGER NOT NULL DEFAULT 0, retention_ms INTEGER, retention_bytes INTEGER);
CREATE TABLE heads (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next INTEGER NOT NULL,
    bytes INTEGER NOT NULL DEFAULT 0, compacted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (topic, partition)) WITHOUT ROWID;
CREATE TABLE offsets (
    grp TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL, next INTEGER NOT NULL,
    PRIMARY KEY (grp, topic, partition)) WITHOUT ROWID;
CREATE TABLE members (
    grp TEXT NOT NULL, member TEXT NOT NULL, pid INTEGER NOT NULL, started INTEGER NOT NULL,
    heartbeat_ms INTEGER NOT NULL, PRIMARY KEY (grp, member)) WITHOUT ROWID;
CREATE TABLE leases (
    grp TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL, member TEXT NOT NULL,
    epoch INTEGER NOT NULL, PRIMARY KEY (grp, topic, partition)) WITHOUT ROWID;
CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO meta VALUES ('epoch', 0);
"""
# The first layout (unversioned): same tables minus epochs, start times and compaction marks.
# Members and leases are session state, so they are dropped rather than converted.
_V1_TABLES = frozenset({"topics", "heads", "offsets", "members", "leases"})
_MIGRATE_V1 = """
ALTER TABLE heads ADD COLUMN compacted INTEGER NOT NULL DEFAULT 0;
DELETE FROM members;
DELETE FROM leases;
ALTER TABLE members ADD COLUMN started INTEGER NOT NULL DEFAULT 0;
ALTER TABLE leases ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO meta VALUES ('epoch', 0);
"""
_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_HAVE_PROC = os.path.isdir("/proc/self")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _rid(partition: int, offset: int) -> int:
    return (partition << _SHIFT) | offset


def _is_busy(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and (
        getattr(exc, "sqlite_errorcode", None) in _BUSY_CODES or "locked" in str(exc)
    )


def _process_start(pid: int) -> int | None:
    """Start time of a running process (0 where unknowable), or None if it is gone.

    A zombie counts as gone: it will never poll again although ``os.kill(pid, 0)`` succeeds,
    and the start time tells a reused pid from the member that registered it.
    """
    if _HAVE_PROC:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except FileNotFoundError:
            return None
        except OSError:
            return 0
        fields = stat[stat.rfind(b")") + 2 :].split()
        if not fields or fields[0] in (b"Z", b"X"):
            return None
        return int(fields[19]) if len(fields) > 19 else 0
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return 0
    return 0


class _Db:
    """One SQLite connection guarded by a lock, with the pragmas every user needs."""

    def __init__(self, path: Path, fsync: bool) -> None:
        self.conn = sqlite3.connect(
            str(path), timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self.lock = threading.RLock()
        self.closed = False
        self.conn.execute("PRAGMA busy_timeout=30000")
        deadline = time.monotonic() + 30.0
        while True:  # switching to WAL needs a moment alone with a brand-new file
            try:
                mode = str(self.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0])
                break
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() > deadline:
                    self.conn.close()
                    raise
                time.sleep(0.01)
        if mode.lower() != "wal":
            self.conn.close()
            raise BusError(f"{path}: SQLite cannot use WAL here (got {mode!r}); use a local disk")
        self.conn.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
        self.conn.execute("PRAGMA journal_size_limit=67108864")
        self.conn.execute("PRAGMA cache_size=-16384")

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE transaction: writers queue on SQLite's lock instead of failing late."""
        with self.lock:
            self.check()
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: one consistent snapshot across several statements."""
        with self.lock:
            self.check()
            self.conn.execute("BEGIN")
            try:
                yield self.conn
            finally:
                self.conn.execute("COMMIT")

    def data_version(self) -> int:
        """Changes whenever another connection commits: the cheap "anything new?" probe."""
        with self.lock:
            self.check()
            row = self.conn.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """All rows of one statement (its own snapshot)."""
        with self.lock:
            self.check()
            return self.conn.execute(sql, params).fetchall()

    def check(self) -> None:
        if self.closed:
            raise BusError("this bus handle is closed")

    def close(self) -> None:
        with self.lock:
            if not self.closed:
                self.closed = True
                self.conn.close()


def _marks(c: sqlite3.Connection, topic: str, tid: int, p: int) -> tuple[int, int]:
    (high,) = c.execute(
        "SELECT next FROM heads WHERE topic=? AND partition=?", (topic, p)
    ).fetchone()
    (low,) = c.execute(
        f"SELECT MIN(rid) FROM t{tid} WHERE rid >= ? AND rid <= ?",
        (_rid(p, 0), _rid(p, _MAX_OFFSET)),
    ).fetchone()
    return (int(low) & _MAX_OFFSET if low is not None else int(high)), int(high)


class LocalBus:
    """The embedded bus under ``directory`` (created if missing)."""

    def __init__(
        self,
        directory: str | Path,
        *,
        fsync: bool = False,
        default_partitions: int = 4,
        session_timeout_ms: int = 10_000,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / "bus.sqlite3"
        self.fsync = fsync
        self.default_partitions = default_partitions
        self.session_timeout_ms = session_timeout_ms
        self._db = _Db(self.path, fsync)
        self._topic_cache: dict[str, tuple[int, int]] = {}
        self._rr = itertools.count(random.randrange(1 << 20))
        try:
            self._init_schema()
        except BaseException:
            self._db.close()
            raise

    def _init_schema(self) -> None:
        [(version,)] = self._db.query("PRAGMA user_version")
        if version == _SCHEMA_VERSION:
            return
        with self._db.write() as c:
            (version,) = c.execute("PRAGMA user_version").fetchone()
            tables = {str(r[0]) for r in c.execute("SELECT name FROM sqlite_master")}
            if version == 0 and not tables:
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        c.execute(stmt)
            elif version == 0 and tables >= _V1_TABLES:
                for stmt in _MIGRATE_V1.split(";"):
                    if stmt.strip():
                        c.execute(stmt)
            elif version != _SCHEMA_VERSION:
                raise BusError(
                    f"{self.path} has bus schema {version}, this version needs "
                    f"{_SCHEMA_VERSION}; move the old directory away (or drain it with the "
                    "version that wrote it)"
                )
            c.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    # -- topics ---------------------------------------------------------------------------
    def ensure_topic(self, spec: TopicSpec) -> int:
        info = self._topic(spec.name, create=False)
        if info is not None:
            return info[1]
        if not spec.name or not 1 <= spec.partitions <= _MAX_PARTITIONS:
            raise BusError(f"topic {spec.name!r}: needs a name and 1..{_MAX_PARTITIONS} partitions")
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
            c.execute(
                f"CREATE TABLE t{next_id} "
                "(rid INTEGER PRIMARY KEY, ts INTEGER NOT NULL, key BLOB, value BLOB NOT NULL)"
            )
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
        rows = self._db.query("SELECT id, partitions FROM topics WHERE name=?", (name,))
        row = rows[0] if rows else None
        if row is None:
            if not create:
                return None
            self.ensure_topic(TopicSpec(name, self.default_partitions))
            return self._topic(name, create=False)
        info = (int(row[0]), int(row[1]))
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
            return {p: _marks(c, topic, tid, p) for p in range(partitions)}

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
            marks = self.watermarks(topic)
            done = self.committed(group, topic)
            out[topic] = sum(max(0, hi - max(done.get(p, lo), lo)) for p, (lo, hi) in marks.items())
        return out

    # -- clients --------------------------------------------------------------------------
    def producer(self, *, max_buffered: int = 100_000) -> LocalProducer:
        return LocalProducer(self, max_buffered=max_buffered)

    def consumer(
        self, group: str | None, topics: Sequence[str], start: StartFrom = "earliest"
    ) -> LocalConsumer:
        return LocalConsumer(self, group, topics, start)

    def transaction(self, consumer: object) -> LocalTransaction:
        if not isinstance(consumer, LocalConsumer) or consumer.bus_path != self.path.resolve():
            raise BusError("a local-bus transaction needs a consumer of the same local bus")
        return LocalTransaction(self, consumer)

    def _append(
        self, c: sqlite3.Connection, batch: Sequence[tuple[str, bytes | None, bytes]]
    ) -> None:
        """Append messages inside the caller's write transaction, in the given order.

        Topics were resolved when the messages were queued, so this never creates one (which
        would wait on the very write lock this transaction holds).
        """
        now = _now_ms()
        # per (topic, partition): [next rid, stored bytes]; rows per topic table
        heads: dict[tuple[str, int], list[int]] = {}
        rows: dict[int, list[tuple[int, int, bytes | None, bytes]]] = {}
        cache = self._topic_cache
        rr = self._rr
        crc32 = zlib.crc32
        for topic, key, value in batch:
            info = cache.get(topic) or self._topic(topic, create=False)
            if info is None:
                raise BusError(f"topic {topic!r} does not exist")
            tid, partitions = info
            # partition_for_key, inlined: this loop is the producer's hot path
            p = crc32(key) % partitions if key is not None else next(rr) % partitions
            head = heads.get((topic, p))
            if head is None:
                row = c.execute(
                    "SELECT next, bytes FROM heads WHERE topic=? AND partition=?", (topic, p)
                ).fetchone()
                if row is None:
                    raise BusError(f"topic {topic!r} has no partition {p}")
                head = heads[(topic, p)] = [_rid(p, int(row[0])), int(row[1])]
                if tid not in rows:
                    rows[tid] = []
            rows[tid].append((head[0], now, key, value))
            head[0] += 1
            head[1] += len(value)
        updates = []
        for (topic, p), (nxt, size) in heads.items():
            offset = nxt - _rid(p, 0)
            if offset > _MAX_OFFSET + 1:
                raise BusError(f"{topic}[{p}] is full ({_MAX_OFFSET} offsets)")
            updates.append((offset, size, topic, p))
        for tid, table_rows in rows.items():
            table_rows.sort()  # b-tree appends partition by partition: ~25% faster
            c.executemany(f"INSERT INTO t{tid} VALUES (?,?,?,?)", table_rows)
        c.executemany("UPDATE heads SET next=?, bytes=? WHERE topic=? AND partition=?", updates)

    # -- maintenance ----------------------------------------------------------------------
    def maintain(self) -> dict[str, int]:
        """Apply retention and compaction, one short write transaction per partition and step.

        Every step costs in proportion to what it deletes (plus, for compaction, what was
        appended since the last run), never to the size of the topic.
        """
        dropped: dict[str, int] = {}
        specs = self._db.query(
            "SELECT name, id, partitions, compact, retention_ms, retention_bytes FROM topics"
        )
        for name, tid, partitions, compact, retention_ms, retention_bytes in specs:
            topic, tid, n = str(name), int(tid), 0
            for p in range(int(partitions)):
                if compact:
                    with self._db.write() as c:
                        n += _compact(c, topic, tid, p)
                if retention_ms is not None:
                    with self._db.write() as c:
                        cut = _age_cutoff(c, tid, p, _now_ms() - int(retention_ms))
                        n += _delete_prefix(c, topic, tid, p, cut)
                if retention_bytes is not None:
                    with self._db.write() as c:
                        cut = _size_cutoff(c, topic, tid, p, int(retention_bytes))
                        n += _delete_prefix(c, topic, tid, p, cut)
            dropped[topic] = n
        return dropped

    def close(self) -> None:
        self._db.close()


def _compact(c: sqlite3.Connection, topic: str, tid: int, p: int) -> int:
    """Keep the newest message per non-null key in partition ``p``.

    Incremental: rows before ``heads.compacted`` already hold each key once, so only keys
    written since then can have older copies, found through the ``(key, rid)`` index.
    """
    (mark, high) = c.execute(
        "SELECT compacted, next FROM heads WHERE topic=? AND partition=?", (topic, p)
    ).fetchone()
    if int(mark) >= int(high):
        return 0
    lo, hi = _rid(p, 0), _rid(p, _MAX_OFFSET)
    freed = c.execute(
        f"DELETE FROM t{tid} WHERE rid >= ?1 AND rid <= ?2 AND key IN "
        f"(SELECT key FROM t{tid} WHERE rid >= ?3 AND rid <= ?2 AND key IS NOT NULL) "
        f"AND rid < (SELECT MAX(n.rid) FROM t{tid} AS n "
        f"WHERE n.key = t{tid}.key AND n.rid >= ?1 AND n.rid <= ?2) RETURNING LENGTH(value)",
        (lo, hi, _rid(p, int(mark))),
    ).fetchall()
    c.execute(
        "UPDATE heads SET compacted=?, bytes = bytes - ? WHERE topic=? AND partition=?",
        (int(high), sum(int(r[0]) for r in freed), topic, p),
    )
    return len(freed)


def _age_cutoff(c: sqlite3.Connection, tid: int, p: int, oldest_ms: int) -> int:
    """First rid of partition ``p`` to keep: the first message stamped at ``oldest_ms`` or later."""
    row = c.execute(
        f"SELECT rid FROM t{tid} WHERE rid >= ? AND rid <= ? AND ts >= ? ORDER BY rid LIMIT 1",
        (_rid(p, 0), _rid(p, _MAX_OFFSET), oldest_ms),
    ).fetchone()
    return int(row[0]) if row is not None else _rid(p, _MAX_OFFSET) + 1


def _size_cutoff(c: sqlite3.Connection, topic: str, tid: int, p: int, limit: int) -> int:
    """First rid of partition ``p`` to keep so the kept values total at most ``limit`` bytes."""
    (size,) = c.execute(
        "SELECT bytes FROM heads WHERE topic=? AND partition=?", (topic, p)
    ).fetchone()
    excess = int(size) - limit
    cut = _rid(p, 0)
    if excess <= 0:
        return cut
    for rid, length in c.execute(
        f"SELECT rid, LENGTH(value) FROM t{tid} WHERE rid >= ? AND rid <= ? ORDER BY rid",
        (_rid(p, 0), _rid(p, _MAX_OFFSET)),
    ):
        excess -= int(length)
        cut = int(rid) + 1
        if excess <= 0:
            break
    return cut


def _delete_prefix(c: sqlite3.Connection, topic: str, tid: int, p: int, cut: int) -> int:
    """Delete partition ``p``'s rows before ``cut``; keep ``heads.bytes`` exact."""
    lo = _rid(p, 0)
    if cut <= lo:
        return 0
    count, size = c.execute(
        f"SELECT COUNT(*), COALESCE(SUM(LENGTH(value)), 0) FROM t{tid} WHERE rid >= ? AND rid < ?",
        (lo, cut),
    ).fetchone()
    if count:
        c.execute(f"DELETE FROM t{tid} WHERE rid >= ? AND rid < ?", (lo, cut))
        c.execute(
            "UPDATE heads SET bytes = bytes - ? WHERE topic=? AND partition=?",
            (int(size), topic, p),
        )
    return int(count)


class LocalProducer:
    """Buffers messages and writes them in batches from one background thread.

    Batching is what makes the embedded bus fast: one SQLite transaction per batch instead of
    per message. ``produce`` blocks (backpressure) once ``max_buffered`` messages are waiting.
    A batch that meets a busy database is retried (it was rolled back, so no duplicates); any
    other failure is kept and raised by every later call.
    """

    BUSY_RETRY_S = 60.0

    def __init__(self, bus: LocalBus, *, max_buffered: int = 100_000) -> None:
        self._bus = bus
        self._db = _Db(bus.path, bus.fsync)
        self._max = max_buffered
        self._cond = threading.Condition()
        self._queue: list[tuple[str, bytes | None, bytes]] = []
        self._queued = 0
        self._written = 0
        self._error: BaseException | None = None
        self._closing = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="local-bus-producer", daemon=True)
        self._thread.start()

    def produce(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        if type(value) is not bytes or (key is not None and type(key) is not bytes):
            value, key = _as_bytes(value, key)
        self._bus.topic_info(topic)
        with self._cond:
            while len(self._queue) >= self._max and self._error is None and not self._closing:
                self._cond.wait(0.1)
            self._raise_if_failed()
            if self._closing:
                raise BusError("producer is closed")
            self._queue.append((topic, key, value))
            self._queued += 1
            if len(self._queue) == 1:  # the writer may be asleep on an empty queue
                self._cond.notify_all()

    def pending(self) -> int:
        """Messages produced but not yet written (the backlog a collector watches)."""
        with self._cond:
            return self._queued - self._written

    def flush(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._queued
            while self._written < target:
                self._raise_if_failed()
                if not self._thread.is_alive():
                    raise BusError("producer writer thread is gone")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise BusError(f"flush timed out with {target - self._written} unwritten")
                self._cond.wait(min(remaining, 0.5) if remaining is not None else 0.5)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            lost = self._queued - self._written
            raise BusError(
                f"local bus write failed, {lost} message(s) not written: {self._error!r}"
            ) from self._error

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                batch, self._queue = self._queue, []
                self._cond.notify_all()
            try:
                self._write(batch)
            except BaseException as exc:  # surfaced to produce()/flush()/close() callers
                with self._cond:
                    self._error = exc
                    self._cond.notify_all()
                return
            with self._cond:
                self._written += len(batch)
                self._cond.notify_all()

    def _write(self, batch: list[tuple[str, bytes | None, bytes]]) -> None:
        deadline = time.monotonic() + self.BUSY_RETRY_S
        delay = 0.005
        while True:
            try:
                with self._db.write() as c:
                    self._bus._append(c, batch)
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def close(self) -> None:
        """Write everything still queued, then release the connection."""
        if self._closed:
            return
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join()
        self._closed = True
        self._db.close()
        with self._cond:
            self._raise_if_failed()


def _as_bytes(value: object, key: object) -> tuple[bytes, bytes | None]:
    """Bytes-like payloads as ``bytes``; reject what SQLite would store as TEXT or INTEGER and
    hand back to consumers as something other than ``bytes``."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"message value must be bytes, not {type(value).__name__}")
    if key is not None and not isinstance(key, bytes | bytearray | memoryview):
        raise TypeError(f"message key must be bytes or None, not {type(key).__name__}")
    return bytes(value), None if key is None else bytes(key)


def _member_alive(pid: int, started: int, fresh: bool) -> bool:
    if not fresh:
        return False
    now_started = _process_start(pid)
    return now_started is not None and (0 in (started, now_started) or now_started == started)


class LocalConsumer:
    """Reads assigned partitions in offset order; see the module docstring for groups.

    Group membership is driven by :meth:`poll` (and :meth:`assignment`): each call at most every
    ``REBALANCE_INTERVAL_S`` heartbeats, expels dead members and converges on the shared
    assignment. All members of a group must subscribe to the same topics.
    """

    REBALANCE_INTERVAL_S = 0.5

    def __init__(
        self, bus: LocalBus, group: str | None, topics: Sequence[str], start: StartFrom
    ) -> None:
        if start not in ("earliest", "latest"):
            raise BusError(f"start must be 'earliest' or 'latest', not {start!r}")
        if not topics:
            raise BusError("a consumer needs at least one topic")
        self._bus = bus
        self.bus_path = bus.path.resolve()
        self._group = group
        self._topics = sorted(set(topics))
        self._start = start
        self._pid = os.getpid()
        self._started = _process_start(self._pid) or 0
        self._member = f"{self._pid}-{uuid.uuid4().hex[:12]}"
        self._positions: dict[TopicPartition, int] = {}
        self._consumed: dict[TopicPartition, int] = {}
        self._epochs: dict[TopicPartition, int] = {}
        self._assigned: list[TopicPartition] = []
        self._sql: dict[str, str] = {}
        # heartbeat well within the session timeout, or live members would expel each other
        self._interval = min(self.REBALANCE_INTERVAL_S, bus.session_timeout_ms / 3000)
        self._joined = False
        self._dirty = True
        self._next_rebalance = 0.0
        self._seen_version = -1
        self._rr = 0
        self._closed = False
        for topic in self._topics:
            bus.topic_info(topic)
        self._db = _Db(bus.path, bus.fsync)
        if group is None:
            self._assigned = self._all_partitions()
            with self._db.read() as c:
                for tp in self._assigned:
                    self._positions[tp] = self._start_offset(c, tp, None)

    @property
    def group(self) -> str | None:
        return self._group

    @property
    def member_id(self) -> str:
        return self._member

    def _all_partitions(self) -> list[TopicPartition]:
        return [(t, p) for t in self._topics for p in range(self._bus.topic_info(t)[1])]

    def _start_offset(
        self, c: sqlite3.Connection, tp: TopicPartition, committed: int | None
    ) -> int:
        low, high = _marks(c, tp[0], self._bus.topic_info(tp[0])[0], tp[1])
        if committed is None:
            return low if self._start == "earliest" else high
        return min(max(committed, low), high)

    # -- group membership -----------------------------------------------------------------
    def _rebalance(self, group: str) -> None:
        now = _now_ms()
        everything = self._all_partitions()
        epochs: dict[TopicPartition, int] = {}
        starts: dict[TopicPartition, int] = {}
        with self._db.write() as c:
            known = c.execute(
                "SELECT 1 FROM members WHERE grp=? AND member=?", (group, self._member)
            ).fetchone()
            expelled = known is None and self._joined  # someone found us dead: start afresh
            c.execute(
                "INSERT INTO members VALUES (?,?,?,?,?) ON CONFLICT(grp, member) "
                "DO UPDATE SET heartbeat_ms=excluded.heartbeat_ms",
                (group, self._member, self._pid, self._started, now),
            )
            live: list[str] = []
            timeout = self._bus.session_timeout_ms
            for member, pid, started, beat in c.execute(
                "SELECT member, pid, started, heartbeat_ms FROM members WHERE grp=?", (group,)
            ).fetchall():
                if member == self._member or _member_alive(
                    int(pid), int(started), now - int(beat) < timeout
                ):
                    live.append(str(member))
                else:
                    c.execute("DELETE FROM members WHERE grp=? AND member=?", (group, member))
                    c.execute("DELETE FROM leases WHERE grp=? AND member=?", (group, member))
            live.sort()
            wanted = everything[live.index(self._member) :: len(live)]
            leases = {
                (str(t), int(p)): (str(m), int(e))
                for t, p, m, e in c.execute(
                    "SELECT topic, partition, member, epoch FROM leases WHERE grp=?", (group,)
                ).fetchall()
            }
            for tp, (member, _epoch) in leases.items():
                if member == self._member and tp not in wanted:
                    c.execute(
                        "DELETE FROM leases WHERE grp=? AND topic=? AND partition=?", (group, *tp)
                    )
            for tp in wanted:
                lease = leases.get(tp)
                if lease is None:
                    c.execute("UPDATE meta SET value = value + 1 WHERE name='epoch'")
                    (epoch,) = c.execute("SELECT value FROM meta WHERE name='epoch'").fetchone()
                    c.execute(
                        "INSERT INTO leases VALUES (?,?,?,?,?)", (group, *tp, self._member, epoch)
                    )
                    epochs[tp] = int(epoch)
                elif lease[0] == self._member:
                    epochs[tp] = lease[1]
            for tp, epoch in epochs.items():
                if expelled or self._epochs.get(tp) != epoch:
                    row = c.execute(
                        "SELECT next FROM offsets WHERE grp=? AND topic=? AND partition=?",
                        (group, *tp),
                    ).fetchone()
                    starts[tp] = self._start_offset(c, tp, None if row is None else int(row[0]))
        self._joined = True
        for tp in list(self._positions):
            if tp not in epochs:  # lost: whoever owns it now starts from the committed offset
                del self._positions[tp]
                self._consumed.pop(tp, None)
        for tp, offset in starts.items():
            self._positions[tp] = offset
            self._consumed.pop(tp, None)
        if starts or epochs.keys() != self._epochs.keys():
            self._dirty = True
        self._epochs = epochs
        self._assigned = [tp for tp in everything if tp in epochs]

    # -- reading --------------------------------------------------------------------------
    def assignment(self) -> list[TopicPartition]:
        self._check_open()
        if self._group is not None and time.monotonic() >= self._next_rebalance:
            self._rebalance(self._group)
            self._next_rebalance = time.monotonic() + self._interval
        return list(self._assigned)

    def position(self) -> dict[TopicPartition, int]:
        return dict(self._positions)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if tp not in self._positions:
            raise BusError(f"{tp[0]}[{tp[1]}] is not assigned to this consumer")
        if offset < 0:
            raise BusError(f"cannot seek to negative offset {offset}")
        self._positions[tp] = int(offset)
        self._dirty = True

    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Message]:
        self._check_open()
        deadline = time.monotonic() + max(timeout, 0.0)
        delay = 0.0005
        while True:
            assigned = self.assignment()
            version = self._db.data_version()
            # data_version only moves for other connections' commits, so our own rebalance,
            # seek or transaction sets _dirty to force a read.
            if self._dirty or version != self._seen_version:
                out = self._read(assigned, max(1, max_records))
                if out:
                    return out
                self._dirty = False
                self._seen_version = version
            now = time.monotonic()
            if now >= deadline:
                return []
            time.sleep(min(delay, deadline - now))
            delay = min(delay * 2, 0.004)

    def _read(self, assigned: list[TopicPartition], max_records: int) -> list[Message]:
        out: list[Message] = []
        n = len(assigned)
        if not n:
            return out
        self._rr = (self._rr + 1) % n
        positions = self._positions
        with self._db.lock:
            self._db.check()
            execute = self._db.conn.execute
            for i in range(n):
                want = max_records - len(out)
                if want <= 0:
                    break
                tp = assigned[(self._rr + i) % n]
                topic, p = tp
                sql = self._sql.get(topic)
                if sql is None:
                    sql = self._sql[topic] = (
                        f"SELECT rid, ts, key, value FROM t{self._bus.topic_info(topic)[0]} "
                        "WHERE rid >= ? AND rid <= ? ORDER BY rid LIMIT ?"
                    )
                rows = execute(sql, (_rid(p, positions[tp]), _rid(p, _MAX_OFFSET), want)).fetchall()
                if rows:
                    out += [
                        Message(topic, p, rid & _MAX_OFFSET, key, value, ts)
                        for rid, ts, key, value in rows
                    ]
                    positions[tp] = self._consumed[tp] = (rows[-1][0] & _MAX_OFFSET) + 1
        return out

    # -- committing -----------------------------------------------------------------------
    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Store next-offsets, fenced on this member's leases; a no-op without a group."""
        self._check_open()
        if self._group is None:
            return
        todo = dict(self._consumed) if offsets is None else dict(offsets)
        if todo:
            with self._db.write() as c:
                self._store_offsets(c, self._group, todo, self._epochs)

    def _store_offsets(
        self,
        c: sqlite3.Connection,
        group: str,
        offsets: Mapping[TopicPartition, int],
        epochs: Mapping[TopicPartition, int],
    ) -> None:
        c.execute(
            "UPDATE members SET heartbeat_ms=? WHERE grp=? AND member=?",
            (_now_ms(), group, self._member),
        )
        for (topic, p), nxt in offsets.items():
            if int(nxt) < 0:
                raise BusError(f"cannot commit negative offset {nxt} for {topic}[{p}]")
            row = c.execute(
                "SELECT member, epoch FROM leases WHERE grp=? AND topic=? AND partition=?",
                (group, topic, p),
            ).fetchone()
            if row is None or row[0] != self._member or row[1] != epochs.get((topic, p)):
                raise FencedError(
                    f"member {self._member} of group {group!r} no longer owns {topic}[{p}]"
                )
            c.execute(
                "INSERT INTO offsets VALUES (?,?,?,?) ON CONFLICT(grp, topic, partition) "
                "DO UPDATE SET next=excluded.next",
                (group, topic, p, int(nxt)),
            )

    def _transact(
        self,
        bus: LocalBus,
        batch: Sequence[tuple[str, bytes | None, bytes]],
        offsets: Mapping[TopicPartition, int],
        held: Mapping[TopicPartition, int],
    ) -> None:
        """Append ``batch`` and store ``offsets`` in one write transaction.

        ``held`` are the lease epochs when the transaction began: a partition lost (and maybe
        taken back) since then fences the commit; one first taken inside it is checked now.
        """
        self._check_open()
        if offsets and self._group is None:
            raise BusError("a consumer without a group cannot commit offsets in a transaction")
        if not batch and not offsets:
            return
        with self._db.write() as c:
            if offsets and self._group is not None:
                self._store_offsets(c, self._group, offsets, {**self._epochs, **held})
            bus._append(c, batch)
        self._dirty = True  # our own appends do not move our data_version

    def _check_open(self) -> None:
        if self._closed:
            raise BusError("consumer is closed")

    def close(self) -> None:
        """Leave the group at once (its partitions go to the others); commits nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._group is not None and self._joined:
                with self._db.write() as c:
                    c.execute(
                        "DELETE FROM leases WHERE grp=? AND member=?", (self._group, self._member)
                    )
                    c.execute(
                        "DELETE FROM members WHERE grp=? AND member=?", (self._group, self._member)
                    )
        finally:
            self._db.close()


class LocalTransaction:
    """Outputs plus input offsets in one SQLite transaction: exactly once on one machine.

    Nothing is written before ``__exit__``; an exception inside the ``with`` block discards
    everything, a :class:`FencedError` at exit means nothing was written either.
    """

    def __init__(self, bus: LocalBus, consumer: LocalConsumer) -> None:
        self._bus = bus
        self._consumer = consumer
        self._batch: list[tuple[str, bytes | None, bytes]] = []
        self._offsets: dict[TopicPartition, int] = {}
        self._held: dict[TopicPartition, int] = dict(consumer._epochs)
        self._done = False

    def produce(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        if self._done:
            raise BusError("transaction already finished")
        if type(value) is not bytes or (key is not None and type(key) is not bytes):
            value, key = _as_bytes(value, key)
        self._bus.topic_info(topic)
        self._batch.append((topic, key, value))

    def commit_offsets(self, offsets: Mapping[TopicPartition, int]) -> None:
        if self._done:
            raise BusError("transaction already finished")
        self._offsets.update(offsets)

    def __enter__(self) -> LocalTransaction:
        self._held = dict(self._consumer._epochs)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._done:
            raise BusError("transaction already finished")
        self._done = True
        if exc_type is None:
            self._consumer._transact(self._bus, self._batch, self._offsets, self._held)
