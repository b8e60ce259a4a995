# Table names here are t<integer id> from the bus's own topics table, never user text.
"""The embedded bus's consumer and transaction (see :mod:`logfactory.bus.local` for groups,
leases, epochs and fencing).

The transaction lives with the consumer because it is the consumer's write: its offsets are
fenced on the consumer's leases and it runs on the consumer's connection.
"""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Protocol

from logfactory.bus.base import BusError, FencedError, Message, StartFrom, TopicPartition
from logfactory.bus.local.append import Appender
from logfactory.bus.local.batch import unpack
from logfactory.bus.local.db import (
    MAX_OFFSET,
    Db,
    Entry,
    as_bytes,
    marks,
    now_ms,
    process_start,
    rid_of,
)

__all__ = ["ConsumerSite", "LocalConsumer", "LocalTransaction"]


class ConsumerSite(Protocol):
    """What a consumer and its transactions need of their bus."""

    @property
    def path(self) -> Path: ...

    @property
    def fsync(self) -> bool: ...

    @property
    def session_timeout_ms(self) -> int: ...

    @property
    def appender(self) -> Appender: ...

    def topic_info(self, name: str) -> tuple[int, int]: ...


def _member_alive(pid: int, started: int, fresh: bool) -> bool:
    if not fresh:
        return False
    now_started = process_start(pid)
    return now_started is not None and (0 in (started, now_started) or now_started == started)


def _expand(
    rows: Iterable[tuple[int, int, bytes | None, bytes, int]],
    topic: str,
    p: int,
    pos: int,
    want: int,
) -> list[Message]:
    """Up to ``want`` messages from offset ``pos`` on, out of rows in rid order; packed rows
    (``n > 1``, :mod:`logfactory.bus.local.batch`) are opened, and the part of the first row
    before ``pos`` is skipped. Rows are pulled one at a time, so a large row left unread costs
    nothing."""
    out: list[Message] = []
    for rid, ts, key, value, n in rows:
        base = rid & MAX_OFFSET
        if n == 1:
            if base >= pos:
                out.append(Message(topic, p, base, key, value, ts))
        elif base + n > pos:
            skip = max(0, pos - base)
            pairs = unpack(value, n, f"{topic}[{p}] offset {base}")
            out += [
                Message(topic, p, base + i, k, v, ts)
                for i, (k, v) in enumerate(pairs[skip : skip + want - len(out)], skip)
            ]
        if len(out) >= want:
            break
    return out


class LocalConsumer:
    """Reads assigned partitions in offset order; see the module docstring for groups.

    Group membership is driven by :meth:`poll` (and :meth:`assignment`): each call at most every
    ``REBALANCE_INTERVAL_S`` heartbeats, expels dead members and converges on the shared
    assignment. All members of a group must subscribe to the same topics.
    """

    REBALANCE_INTERVAL_S = 0.5

    def __init__(
        self, bus: ConsumerSite, group: str | None, topics: Sequence[str], start: StartFrom
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
        self._started = process_start(self._pid) or 0
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
        self._db = Db(bus.path, bus.fsync)
        if group is None:
            self._assigned = self._all_partitions()
            with self._db.read() as c:
                for tp in self._assigned:
                    self._positions[tp] = self._start_offset(c, tp, None)

    @property
    def group(self) -> str | None:
        return self._group

    def lean(self) -> None:
        """Read through a small cache and no memory map (see :meth:`Db.lean`): for one of many
        readers that each pass over the data once, like SSE streams. The factory does not
        call it: its consumers are few and read the most."""
        self._db.lean()

    @property
    def member_id(self) -> str:
        return self._member

    def _all_partitions(self) -> list[TopicPartition]:
        return [(t, p) for t in self._topics for p in range(self._bus.topic_info(t)[1])]

    def _start_offset(
        self, c: sqlite3.Connection, tp: TopicPartition, committed: int | None
    ) -> int:
        low, high = marks(c, tp[0], self._bus.topic_info(tp[0])[0], tp[1])
        if committed is None:
            return low if self._start == "earliest" else high
        return min(max(committed, low), high)

    # -- group membership -----------------------------------------------------------------
    def _rebalance(self, group: str) -> None:
        now = now_ms()
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

    def epochs(self) -> dict[TopicPartition, int]:
        """Per assigned partition, the lease epoch of this member's current ownership: a new
        number means the partition was lost and taken back, so state built for it is stale."""
        if self._group is None:
            return dict.fromkeys(self._assigned, 0)
        return dict(self._epochs)

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
        if not assigned:
            return []
        self._rr = (self._rr + 1) % len(assigned)
        try:
            return self._read_rows(assigned, max_records)
        except sqlite3.DatabaseError as exc:
            self._db.translate(exc)  # a damaged page: the file and the repair, not SQLite's
            raise

    def _read_rows(self, assigned: list[TopicPartition], max_records: int) -> list[Message]:
        out: list[Message] = []
        n = len(assigned)
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
                    tid = self._bus.topic_info(topic)[0]
                    # from the row holding the position (a packed row may start before it)
                    sql = self._sql[topic] = (
                        f"SELECT rid, ts, key, value, n FROM t{tid} WHERE rid >= COALESCE("
                        f"(SELECT rid FROM t{tid} WHERE rid >= ?1 AND rid <= ?2 "
                        "ORDER BY rid DESC LIMIT 1), ?2) AND rid <= ?3 ORDER BY rid LIMIT ?4"
                    )
                pos = positions[tp]
                cursor = execute(
                    sql, (rid_of(p, 0), rid_of(p, pos), rid_of(p, MAX_OFFSET), want + 1)
                )
                try:
                    got = _expand(cursor, topic, p, pos, want)
                finally:
                    cursor.close()
                if got:
                    out += got
                    positions[tp] = self._consumed[tp] = got[-1].offset + 1
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
            (now_ms(), group, self._member),
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
        appender: Appender,
        batch: Sequence[Entry],
        offsets: Mapping[TopicPartition, int],
        held: Mapping[TopicPartition, int],
    ) -> None:
        """Append ``batch`` (through the transaction's bus's ``appender``) and store
        ``offsets`` in one write transaction.

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
            appender.append(c, batch)
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

    def __init__(self, bus: ConsumerSite, consumer: LocalConsumer) -> None:
        self._bus = bus
        self._consumer = consumer
        self._batch: list[Entry] = []
        self._offsets: dict[TopicPartition, int] = {}
        self._held: dict[TopicPartition, int] = dict(consumer._epochs)
        self._done = False

    def produce(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        if self._done:
            raise BusError("transaction already finished")
        if type(value) is not bytes or (key is not None and type(key) is not bytes):
            value, key = as_bytes(value, key)
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
            self._consumer._transact(self._bus.appender, self._batch, self._offsets, self._held)
