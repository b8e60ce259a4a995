# Table names here are t<integer id> from the damaged bus's own topics table, never user text.
"""Salvage of a damaged embedded bus: every readable message, copied into a new database.

Why row by row, in Python: SQLite's own ``.recover`` lives in its command-line shell, which
Python's ``sqlite3`` module does not have and a host may not either. A damaged page makes SQLite
fail the statement that reads it, so a plain ``SELECT`` of a topic table stops at the first
damage; here a scan that fails resumes just past it. Rows are keyed by ``partition << 40 |
offset``, so the scan probes forward from the last good row in doubling steps until a read
succeeds, then bisects back to the first readable key: a damaged region costs about
2 x 40 probes, whatever its size.

What a row must be to be kept: inside the topic's partitions, after the previous row of its
partition (no overlap), with a packed batch that unpacks to as many messages as its row says
(:mod:`logfactory.bus.local.batch`). Kept rows keep their offsets, so consumers' committed
offsets stay meaningful, and each partition's next offset never goes back (the highest of its
old head, its committed offsets and the salvaged rows). Members and leases are session state
and start empty; retention and compaction go on as before.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from logfactory.bus.base import BusError
from logfactory.bus.local.batch import unpack
from logfactory.bus.local.db import (
    MAX_OFFSET,
    MAX_PARTITIONS,
    TOPIC_TABLE,
    create_schema,
    rid_of,
)
from logfactory.errors import NothingToSalvage

__all__ = ["NothingToSalvage", "SalvageReport", "TopicSalvage", "salvage"]

_SHIFT = 40
_BATCH = 1000  # rows inserted a statement


@dataclass
class TopicSalvage:
    """What came out of one topic: messages and rows kept, rows refused as invalid, damaged
    regions skipped, and the highest next offset the damaged bus recorded (0: none readable)."""

    name: str
    partitions: int
    messages: int = 0
    rows: int = 0
    invalid: int = 0
    damaged_regions: int = 0
    recorded_end: int = 0


@dataclass
class SalvageReport:
    topics: list[TopicSalvage] = field(default_factory=list)
    offsets: int = 0  # consumer groups' committed offsets copied
    unreadable: list[str] = field(default_factory=list)  # tables, or what could not be read

    @property
    def messages(self) -> int:
        return sum(t.messages for t in self.topics)


def _all_rows(src: sqlite3.Connection, sql: str) -> tuple[list[tuple[Any, ...]], bool]:
    """Rows of a small table, read one at a time up to the first damage; (rows, complete)."""
    rows: list[tuple[Any, ...]] = []
    try:
        cursor = src.execute(sql)
        while (row := cursor.fetchone()) is not None:
            rows.append(row)
    except sqlite3.DatabaseError:
        return rows, False
    return rows, True


class _Scan:
    """The readable rows of one topic table between two keys, skipping damaged regions."""

    def __init__(self, src: sqlite3.Connection, tid: int, columns: str) -> None:
        self.src = src
        self.sql = f"SELECT {columns} FROM t{tid} WHERE rid >= ? AND rid <= ? ORDER BY rid"
        self.regions = 0

    def _readable(self, x: int, hi: int) -> bool:
        """Whether the first row at or after ``x`` (all of it) can be read."""
        try:
            self.src.execute(self.sql + " LIMIT 1", (x, hi)).fetchone()
        except sqlite3.DatabaseError:
            return False
        return True

    def _resume(self, failed: int, hi: int) -> int | None:
        """A key past ``failed`` (where reading failed) from which reading succeeds, as close
        to it as bisection finds; None when nothing up to ``hi`` can be read."""
        step, bad = 1, failed
        while True:
            x = min(failed + step, hi)
            if x <= bad:
                return None
            if self._readable(x, hi):
                break
            if x == hi:
                return None
            bad, step = x, step * 2
        good = x
        while good - bad > 1:
            mid = (bad + good) // 2
            if self._readable(mid, hi):
                good = mid
            else:
                bad = mid
        return good

    def rows(self, lo: int, hi: int) -> Iterator[tuple[Any, ...]]:
        pos, cursor, fresh = lo, None, True
        while pos <= hi:
            try:
                if cursor is None:
                    cursor = self.src.execute(self.sql, (pos, hi))
                row = cursor.fetchone()
            except sqlite3.DatabaseError:
                cursor = None
                self.regions += 1
                # the failing row lies at ``pos`` or after; after a failed restart, past it
                nxt = self._resume(pos if fresh else pos - 1, hi)
                if nxt is None:
                    return
                pos, fresh = nxt, True
                continue
            if row is None:
                return
            fresh = False
            if isinstance(row[0], int) and row[0] >= pos:
                pos = row[0] + 1
                yield row


def _valid(
    row: tuple[Any, ...], partitions: int, ends: dict[int, int], where: str
) -> tuple[int, int] | None:
    """(partition, value bytes) of a row fit to keep, else None."""
    rid, ts, key, value, n, size = row
    if not (isinstance(ts, int) and isinstance(value, bytes) and isinstance(n, int) and n >= 1):
        return None
    if key is not None and not isinstance(key, bytes):
        return None
    p, offset = rid >> _SHIFT, rid & MAX_OFFSET
    if p >= partitions or offset < ends.get(p, 0) or offset + n - 1 > MAX_OFFSET:
        return None
    if n == 1:
        return (p, len(value)) if size is None else None
    try:
        pairs = unpack(value, n, where)
    except BusError:
        return None
    total = sum(len(v) for _k, v in pairs)
    return (p, total) if key is None and size == total else None


def _topics(src: sqlite3.Connection, report: SalvageReport) -> list[tuple[Any, ...]]:
    rows, complete = _all_rows(
        src, "SELECT name, id, partitions, compact, retention_ms, retention_bytes FROM topics"
    )
    if not complete:
        report.unreadable.append("topics (the list of topics; topics after the damage are lost)")
    good: dict[str, tuple[Any, ...]] = {}
    for r in rows:
        name, tid, partitions = r[0], r[1], r[2]
        fits = isinstance(tid, int) and tid > 0 and isinstance(partitions, int)
        if not (isinstance(name, str) and fits and 1 <= partitions <= MAX_PARTITIONS):
            continue
        if name not in good and all(g[1] != tid for g in good.values()):
            good[name] = r
    if not good:
        raise NothingToSalvage("no topic of the damaged bus can be read")
    return list(good.values())


def _columns(src: sqlite3.Connection, tid: int) -> str:
    """Topic tables of schema 2 have no ``n`` and ``size``: every row is one message."""
    try:
        names = {str(r[1]) for r in src.execute(f"PRAGMA table_info(t{tid})")}
    except sqlite3.DatabaseError:
        names = set()
    extra = "n, size" if {"n", "size"} <= names else "1, NULL"
    return f"rid, ts, key, value, {extra}"


def _copy_topic(
    src: sqlite3.Connection,
    dst: sqlite3.Connection,
    spec: tuple[Any, ...],
    heads: dict[tuple[str, int], int],
    committed: dict[tuple[str, int], int],
) -> TopicSalvage:
    name, tid, partitions, compact = str(spec[0]), int(spec[1]), int(spec[2]), bool(spec[3])
    out = TopicSalvage(name, partitions)
    dst.execute("INSERT INTO topics VALUES (?,?,?,?,?,?)", spec)
    dst.execute(TOPIC_TABLE.format(tid=tid))
    scan = _Scan(src, tid, _columns(src, tid))
    ends: dict[int, int] = {}
    sizes: dict[int, int] = {}
    batch: list[tuple[Any, ...]] = []
    for row in scan.rows(rid_of(0, 0), rid_of(partitions - 1, MAX_OFFSET)):
        kept = _valid(row, partitions, ends, f"{name} row {row[0]}")
        if kept is None:
            out.invalid += 1
            continue
        p, size = kept
        ends[p] = (row[0] & MAX_OFFSET) + row[4]
        sizes[p] = sizes.get(p, 0) + size
        out.rows += 1
        out.messages += row[4]
        batch.append(row)
        if len(batch) >= _BATCH:
            dst.executemany(f"INSERT INTO t{tid} VALUES (?,?,?,?,?,?)", batch)
            batch.clear()
    dst.executemany(f"INSERT INTO t{tid} VALUES (?,?,?,?,?,?)", batch)
    if compact:
        dst.execute(f"CREATE INDEX t{tid}_key ON t{tid}(key, rid)")
    out.damaged_regions = scan.regions
    for p in range(partitions):
        recorded = heads.get((name, p), 0)
        out.recorded_end += recorded
        nxt = max(recorded, committed.get((name, p), 0), ends.get(p, 0))
        dst.execute(
            "INSERT INTO heads (topic, partition, next, bytes) VALUES (?,?,?,?)",
            (name, p, nxt, sizes.get(p, 0)),
        )
    return out


def salvage(src: sqlite3.Connection, dst: sqlite3.Connection, bus_id: int) -> SalvageReport:
    """Copy what ``src`` (a damaged bus, opened read-only) still holds into ``dst`` (an empty
    database, in one transaction the caller commits), as bus ``bus_id``. Raises
    :class:`NothingToSalvage` when not even its list of topics can be read."""
    report = SalvageReport()
    topics = _topics(src, report)
    heads_rows, complete = _all_rows(src, "SELECT topic, partition, next FROM heads")
    if not complete:
        report.unreadable.append("heads (next offsets; taken from the salvaged rows)")
    heads = {(str(t), int(p)): int(n) for t, p, n in heads_rows if isinstance(n, int)}
    offsets, complete = _all_rows(src, "SELECT grp, topic, partition, next FROM offsets")
    if not complete:
        report.unreadable.append("offsets (groups whose offsets are lost start again)")
    known = {str(t[0]): int(t[2]) for t in topics}
    offsets = [
        o
        for o in offsets
        if isinstance(o[0], str)
        and o[1] in known
        and isinstance(o[2], int)
        and 0 <= o[2] < known[o[1]]
        and isinstance(o[3], int)
        and o[3] >= 0
    ]
    committed: dict[tuple[str, int], int] = {}
    for _grp, topic, p, nxt in offsets:
        committed[(topic, p)] = max(committed.get((topic, p), 0), nxt)
    epoch_rows, _ = _all_rows(src, "SELECT value FROM meta WHERE name = 'epoch'")
    create_schema(dst, bus_id)
    if epoch_rows and isinstance(epoch_rows[0][0], int):
        dst.execute("UPDATE meta SET value=? WHERE name='epoch'", (epoch_rows[0][0],))
    for spec in topics:
        report.topics.append(_copy_topic(src, dst, spec, heads, committed))
    dst.executemany("INSERT OR IGNORE INTO offsets VALUES (?,?,?,?)", offsets)
    report.offsets = len(offsets)
    return report
