"""The embedded bus: a durable, partitioned log in one SQLite database (WAL mode).

Why SQLite: it gives several processes on one machine a crash-safe shared log with real
transactions and nothing to install, and a transaction that both appends outputs and stores
input offsets is exactly-once on one machine.

Layout: one table per topic whose integer primary key packs ``partition << 40 | offset``, so a
partition is one contiguous, ordered range of the table's b-tree and reading is a range scan.
``heads`` keeps the next offset per partition (so offsets never go back, even after retention
deleted every row). Consumer groups share partitions through ``members`` and ``leases``:
every live member computes the same round-robin assignment and takes a partition only once
its previous owner has let it go or died; commits are fenced on the lease.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from logfactory.bus.base import (
    BusError,
    FencedError,
    Message,
    StartFrom,
    TopicPartition,
    TopicSpec,
    partition_for_key,
)

__all__ = ["LocalBus", "LocalConsumer", "LocalProducer", "LocalTransaction"]

_SHIFT = 40
_MAX_OFFSET = (1 << _SHIFT) - 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (
    name TEXT PRIMARY KEY, id INTEGER NOT NULL UNIQUE, partitions INTEGER NOT NULL,
    compact INTEGER NOT NULL DEFAULT 0, retention_ms INTEGER, retention_bytes INTEGER);
CREATE TABLE IF NOT EXISTS heads (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next INTEGER NOT NULL,
    bytes INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (topic, partition)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS offsets (
    grp TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL, next INTEGER NOT NULL,
    PRIMARY KEY (grp, topic, partition)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS members (
    grp TEXT NOT NULL, member TEXT NOT NULL, pid INTEGER NOT NULL, heartbeat_ms INTEGER NOT NULL,
    PRIMARY KEY (grp, member)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (
    grp TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL, member TEXT NOT NULL,
    PRIMARY KEY (grp, topic, partition)) WITHOUT ROWID;
"""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _rid(partition: int, offset: int) -> int:
    return (partition << _SHIFT) | offset


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Db:
    """One SQLite connection guarded by a lock, with the pragmas every user needs."""

    def __init__(self, path: Path, fsync: bool) -> None:
        self.conn = sqlite3.connect(
            str(path), timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self.lock = threading.RLock()
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
        self.conn.execute("PRAGMA busy_timeout=30000")

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE transaction: writers queue on SQLite's lock instead of failing late."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def data_version(self) -> int:
        with self.lock:
            row = self.conn.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    def close(self) -> None:
        with self.lock:
            self.conn.close()


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
        with self._db.write() as c:
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    c.execute(stmt)
        self._topic_cache: dict[str, tuple[int, int]] = {}

    # -- topics ---------------------------------------------------------------------------
    def ensure_topic(self, spec: TopicSpec) -> int:
        info = self._topic(spec.name, create=False)
        if info is not None:
            return info[1]
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
                f"CREATE TABLE IF NOT EXISTS t{next_id} "
                "(rid INTEGER PRIMARY KEY, ts INTEGER NOT NULL, key BLOB, value BLOB NOT NULL)"
            )
            if spec.compact:
                c.execute(f"CREATE INDEX IF NOT EXISTS t{next_id}_key ON t{next_id}(key, rid)")
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
        with self._db.lock:
            row = self._db.conn.execute(
                "SELECT id, partitions FROM topics WHERE name=?", (name,)
            ).fetchone()
        if row is None:
            if not create:
                return None
            self.ensure_topic(TopicSpec(name, self.default_partitions))
            return self._topic(name, create=False)
        info = (int(row[0]), int(row[1]))
        self._topic_cache[name] = info
        return info

    def topic_info(self, name: str) -> tuple[int, int]:
        info = self._topic(name)
        assert info is not None
        return info

    def topics(self) -> dict[str, int]:
        with self._db.lock:
            rows = self._db.conn.execute("SELECT name, partitions FROM topics").fetchall()
        return {str(n): int(p) for n, p in rows}

    def watermarks(self, topic: str) -> dict[int, tuple[int, int]]:
        info = self._topic(topic, create=False)
        if info is None:
            return {}
        tid, partitions = info
        out: dict[int, tuple[int, int]] = {}
        with self._db.lock:
            c = self._db.conn
            for p in range(partitions):
                (nxt,) = c.execute(
                    "SELECT next FROM heads WHERE topic=? AND partition=?", (topic, p)
                ).fetchone()
                row = c.execute(
                    f"SELECT MIN(rid) FROM t{tid} WHERE rid >= ? AND rid <= ?",
                    (_rid(p, 0), _rid(p, _MAX_OFFSET)),
                ).fetchone()
                low = int(row[0]) & _MAX_OFFSET if row[0] is not None else int(nxt)
                out[p] = (low, int(nxt))
        return out

    def committed(self, group: str, topic: str) -> dict[int, int]:
        with self._db.lock:
            rows = self._db.conn.execute(
                "SELECT partition, next FROM offsets WHERE grp=? AND topic=?", (group, topic)
            ).fetchall()
        return {int(p): int(n) for p, n in rows}

    def groups(self) -> list[str]:
        with self._db.lock:
            rows = self._db.conn.execute("SELECT DISTINCT grp FROM offsets ORDER BY grp").fetchall()
        return [str(r[0]) for r in rows]

    def lag(self, group: str) -> dict[str, int]:
        """Messages not yet committed by ``group``, per topic it has committed on."""
        out: dict[str, int] = {}
        with self._db.lock:
            topics = [
                str(r[0])
                for r in self._db.conn.execute(
                    "SELECT DISTINCT topic FROM offsets WHERE grp=?", (group,)
                ).fetchall()
            ]
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
        if not isinstance(consumer, LocalConsumer):
            raise BusError("a local-bus transaction needs a consumer of the same local bus")
        return LocalTransaction(self, consumer)

    def _append(
        self, c: sqlite3.Connection, batch: Sequence[tuple[str, bytes | None, bytes]]
    ) -> None:
        """Append messages inside the caller's write transaction, in the given order."""
        now = _now_ms()
        heads: dict[tuple[str, int], list[int]] = {}
        rows: dict[int, list[tuple[int, int, bytes | None, bytes]]] = {}
        for i, (topic, key, value) in enumerate(batch):
            tid, partitions = self.topic_info(topic)
            p = partition_for_key(key, partitions, i + now)
            head = heads.get((topic, p))
            if head is None:
                row = c.execute(
                    "SELECT next, bytes FROM heads WHERE topic=? AND partition=?", (topic, p)
                ).fetchone()
                if row is None:
                    raise BusError(f"topic {topic!r} has no partition {p}")
                head = heads[(topic, p)] = [int(row[0]), int(row[1])]
            rows.setdefault(tid, []).append((_rid(p, head[0]), now, key, value))
            head[0] += 1
            head[1] += len(value)
        for tid, table_rows in rows.items():
            c.executemany(f"INSERT INTO t{tid} VALUES (?,?,?,?)", table_rows)
        c.executemany(
            "UPDATE heads SET next=?, bytes=? WHERE topic=? AND partition=?",
            [(n, b, t, p) for (t, p), (n, b) in heads.items()],
        )

    # -- maintenance ----------------------------------------------------------------------
    def maintain(self) -> dict[str, int]:
        dropped: dict[str, int] = {}
        with self._db.lock:
            specs = self._db.conn.execute(
                "SELECT name, id, partitions, compact, retention_ms, retention_bytes FROM topics"
            ).fetchall()
        for name, tid, partitions, compact, retention_ms, retention_bytes in specs:
            n = 0
            with self._db.write() as c:
                if compact:
                    cur = c.execute(
                        f"DELETE FROM t{tid} WHERE rid < (SELECT MAX(rid) FROM t{tid} AS n "
                        f"WHERE n.key IS t{tid}.key)"
                    )
                    n += cur.rowcount
                if retention_ms is not None:
                    cur = c.execute(
                        f"DELETE FROM t{tid} WHERE ts < ?", (_now_ms() - int(retention_ms),)
                    )
                    n += cur.rowcount
                if retention_bytes is not None:
                    n += self._trim_bytes(c, name, tid, int(partitions), int(retention_bytes))
                if n:
                    self._recount_bytes(c, name, tid, int(partitions))
            dropped[str(name)] = n
        return dropped

    @staticmethod
    def _trim_bytes(
        c: sqlite3.Connection, topic: str, tid: int, partitions: int, limit: int
    ) -> int:
        n = 0
        for p in range(partitions):
            lo, hi = _rid(p, 0), _rid(p, _MAX_OFFSET)
            (size,) = c.execute(
                f"SELECT COALESCE(SUM(LENGTH(value)), 0) FROM t{tid} WHERE rid BETWEEN ? AND ?",
                (lo, hi),
            ).fetchone()
            excess = int(size) - limit
            if excess <= 0:
                continue
            cutoff = lo
            for rid, length in c.execute(
                f"SELECT rid, LENGTH(value) FROM t{tid} WHERE rid BETWEEN ? AND ? ORDER BY rid",
                (lo, hi),
            ):
                if excess <= 0:
                    break
                excess -= int(length)
                cutoff = int(rid) + 1
            n += c.execute(f"DELETE FROM t{tid} WHERE rid >= ? AND rid < ?", (lo, cutoff)).rowcount
        return n

    @staticmethod
    def _recount_bytes(c: sqlite3.Connection, topic: str, tid: int, partitions: int) -> None:
        for p in range(partitions):
            (size,) = c.execute(
                f"SELECT COALESCE(SUM(LENGTH(value)), 0) FROM t{tid} WHERE rid BETWEEN ? AND ?",
                (_rid(p, 0), _rid(p, _MAX_OFFSET)),
            ).fetchone()
            c.execute(
                "UPDATE heads SET bytes=? WHERE topic=? AND partition=?", (int(size), topic, p)
            )

    def close(self) -> None:
        self._db.close()


class LocalProducer:
    """Buffers messages and writes them in batches from one background thread.

    Batching is what makes the embedded bus fast: one SQLite transaction per batch instead of
    per message. ``produce`` blocks (backpressure) once ``max_buffered`` messages are waiting.
    """

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
        self._thread = threading.Thread(target=self._run, name="local-bus-producer", daemon=True)
        self._thread.start()

    def produce(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        self._bus.topic_info(topic)
        with self._cond:
            while len(self._queue) >= self._max and self._error is None and not self._closing:
                self._cond.wait(0.1)
            if self._error is not None:
                raise BusError(f"local bus write failed: {self._error}") from self._error
            if self._closing:
                raise BusError("producer is closed")
            self._queue.append((topic, key, value))
            self._queued += 1
            self._cond.notify_all()

    def pending(self) -> int:
        with self._cond:
            return self._queued - self._written

    def flush(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._queued
            while self._written < target:
                if self._error is not None:
                    raise BusError(f"local bus write failed: {self._error}") from self._error
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise BusError(f"flush timed out with {target - self._written} unwritten")
                self._cond.wait(remaining if remaining is not None else 0.5)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue and self._closing:
                    return
                batch, self._queue = self._queue, []
                self._cond.notify_all()
            try:
                with self._db.write() as c:
                    self._bus._append(c, batch)
            except BaseException as exc:  # surfaced to produce()/flush() callers
                with self._cond:
                    self._error = exc
                    self._cond.notify_all()
                return
            with self._cond:
                self._written += len(batch)
                self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join()
        self._db.close()
        if self._error is not None:
            raise BusError(f"local bus write failed: {self._error}") from self._error


class LocalConsumer:
    """Reads assigned partitions in offset order; see the module docstring for groups."""

    REBALANCE_INTERVAL_S = 0.5

    def __init__(
        self, bus: LocalBus, group: str | None, topics: Sequence[str], start: StartFrom
    ) -> None:
        self._bus = bus
        self._group = group
        self._topics = list(topics)
        self._start = start
        self._db = _Db(bus.path, bus.fsync)
        self._member = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._positions: dict[TopicPartition, int] = {}
        self._consumed: dict[TopicPartition, int] = {}
        self._assigned: list[TopicPartition] = []
        self._next_rebalance = 0.0
        self._seen_version = -1
        self._rr = 0
        self._closed = False
        for topic in self._topics:
            bus.topic_info(topic)
        if group is None:
            self._assigned = self._all_partitions()
            for tp in self._assigned:
                self._positions[tp] = self._start_offset(tp, None)

    @property
    def group(self) -> str | None:
        return self._group

    @property
    def member_id(self) -> str:
        return self._member

    def _all_partitions(self) -> list[TopicPartition]:
        return [(t, p) for t in sorted(self._topics) for p in range(self._bus.topic_info(t)[1])]

    def _start_offset(self, tp: TopicPartition, committed: int | None) -> int:
        low, high = self._bus.watermarks(tp[0])[tp[1]]
        if committed is None:
            return low if self._start == "earliest" else high
        return max(committed, low)

    # -- group membership -----------------------------------------------------------------
    def _rebalance(self) -> None:
        group = self._group
        if group is None:
            return
        now = _now_ms()
        with self._db.write() as c:
            c.execute(
                "INSERT INTO members VALUES (?,?,?,?) ON CONFLICT(grp, member) "
                "DO UPDATE SET heartbeat_ms=excluded.heartbeat_ms",
                (group, self._member, os.getpid(), now),
            )
            members = c.execute(
                "SELECT member, pid, heartbeat_ms FROM members WHERE grp=?", (group,)
            ).fetchall()
            live: list[str] = []
            for member, pid, beat in members:
                if member == self._member or (
                    _pid_alive(int(pid)) and now - int(beat) < self._bus.session_timeout_ms
                ):
                    live.append(str(member))
                else:
                    c.execute("DELETE FROM members WHERE grp=? AND member=?", (group, member))
                    c.execute("DELETE FROM leases WHERE grp=? AND member=?", (group, member))
            live.sort()
            mine = live.index(self._member)
            wanted = [tp for i, tp in enumerate(self._all_partitions()) if i % len(live) == mine]
            owners = {
                (str(t), int(p)): str(m)
                for t, p, m in c.execute(
                    "SELECT topic, partition, member FROM leases WHERE grp=?", (group,)
                ).fetchall()
            }
            for tp in self._assigned:
                if tp not in wanted:
                    c.execute(
                        "DELETE FROM leases WHERE grp=? AND topic=? AND partition=? AND member=?",
                        (group, tp[0], tp[1], self._member),
                    )
            assigned: list[TopicPartition] = []
            for tp in wanted:
                owner = owners.get(tp)
                if owner is None:
                    c.execute("INSERT INTO leases VALUES (?,?,?,?)", (group, *tp, self._member))
                elif owner != self._member:
                    continue
                assigned.append(tp)
            committed = {
                (str(t), int(p)): int(n)
                for t, p, n in c.execute(
                    "SELECT topic, partition, next FROM offsets WHERE grp=?", (group,)
                ).fetchall()
            }
        for tp in assigned:
            if tp not in self._positions:
                self._positions[tp] = self._start_offset(tp, committed.get(tp))
        for tp in list(self._positions):
            if tp not in assigned:
                del self._positions[tp]
                self._consumed.pop(tp, None)
        self._assigned = assigned

    # -- reading --------------------------------------------------------------------------
    def assignment(self) -> list[TopicPartition]:
        if self._group is not None and time.monotonic() >= self._next_rebalance:
            self._rebalance()
            self._next_rebalance = time.monotonic() + self.REBALANCE_INTERVAL_S
        return list(self._assigned)

    def position(self) -> dict[TopicPartition, int]:
        return dict(self._positions)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._positions[tp] = offset

    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Message]:
        if self._closed:
            raise BusError("consumer is closed")
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while True:
            assigned = self.assignment()
            version = self._db.data_version()
            if version != self._seen_version or not assigned:
                out = self._read(assigned, max_records)
                if out:
                    return out
                self._seen_version = version
            now = time.monotonic()
            if now >= deadline:
                return []
            time.sleep(min(delay, deadline - now))
            delay = min(delay * 2, 0.004)

    def _read(self, assigned: list[TopicPartition], max_records: int) -> list[Message]:
        out: list[Message] = []
        if not assigned:
            return out
        n = len(assigned)
        self._rr = (self._rr + 1) % n
        with self._db.lock:
            c = self._db.conn
            for i in range(n):
                if len(out) >= max_records:
                    break
                tp = assigned[(self._rr + i) % n]
                topic, p = tp
                tid = self._bus.topic_info(topic)[0]
                pos = self._positions[tp]
                rows = c.execute(
                    f"SELECT rid, ts, key, value FROM t{tid} WHERE rid >= ? AND rid <= ? "
                    "ORDER BY rid LIMIT ?",
                    (_rid(p, pos), _rid(p, _MAX_OFFSET), max_records - len(out)),
                ).fetchall()
                for rid, ts, key, value in rows:
                    off = int(rid) & _MAX_OFFSET
                    out.append(Message(topic, p, off, key, bytes(value), int(ts)))
                if rows:
                    last = int(rows[-1][0]) & _MAX_OFFSET
                    self._positions[tp] = last + 1
                    self._consumed[tp] = last + 1
        return out

    # -- committing -----------------------------------------------------------------------
    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        if self._group is None:
            return
        todo = dict(self._consumed if offsets is None else offsets)
        if not todo:
            return
        with self._db.write() as c:
            self.commit_in(c, todo)

    def commit_in(self, c: sqlite3.Connection, offsets: Mapping[TopicPartition, int]) -> None:
        """Store offsets inside an open write transaction, fenced on this member's leases."""
        group = self._group
        if group is None:
            return
        for (topic, p), nxt in offsets.items():
            row = c.execute(
                "SELECT member FROM leases WHERE grp=? AND topic=? AND partition=?",
                (group, topic, p),
            ).fetchone()
            if row is None or row[0] != self._member:
                raise FencedError(
                    f"member {self._member} of group {group!r} no longer owns {topic}[{p}]"
                )
            c.execute(
                "INSERT INTO offsets VALUES (?,?,?,?) ON CONFLICT(grp, topic, partition) "
                "DO UPDATE SET next=excluded.next",
                (group, topic, p, int(nxt)),
            )

    def write_transaction(self) -> _Db:
        return self._db

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._group is not None:
            with self._db.write() as c:
                c.execute(
                    "DELETE FROM leases WHERE grp=? AND member=?", (self._group, self._member)
                )
                c.execute(
                    "DELETE FROM members WHERE grp=? AND member=?", (self._group, self._member)
                )
        self._db.close()


class LocalTransaction:
    """Outputs plus input offsets in one SQLite transaction: exactly once on one machine."""

    def __init__(self, bus: LocalBus, consumer: LocalConsumer) -> None:
        self._bus = bus
        self._consumer = consumer
        self._batch: list[tuple[str, bytes | None, bytes]] = []
        self._offsets: dict[TopicPartition, int] = {}

    def produce(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        self._bus.topic_info(topic)
        self._batch.append((topic, key, value))

    def commit_offsets(self, offsets: Mapping[TopicPartition, int]) -> None:
        self._offsets.update(offsets)

    def __enter__(self) -> LocalTransaction:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            return
        with self._consumer.write_transaction().write() as c:
            self._consumer.commit_in(c, self._offsets)
            self._bus._append(c, self._batch)
