# Table names here are t<integer id> from the bus's own topics table, never user text.
"""Retention and compaction of the embedded bus (see :meth:`LocalBus.maintain`).

Both only ever delete rows: offsets of the remaining messages never change, and age and size
retention delete only a prefix of a partition, so the low watermark is always the first row
left. ``heads.bytes`` is kept exact by every deletion so size retention needs no scan. Both work
on whole rows, so a packed row of several messages (:mod:`logfactory.bus.local.batch`) goes as
one, except where size retention's cut falls inside one: that row is rewritten with the
messages it keeps, so retention stays exact to the message.
"""

from __future__ import annotations

import sqlite3

from logfactory.bus.local.batch import pack, unpack
from logfactory.bus.local.db import MAX_OFFSET, Db, now_ms, rid_of

__all__ = ["maintain"]


def maintain(db: Db) -> dict[str, int]:
    """Messages deleted per topic; one short write transaction per partition and step, so
    producers and consumers wait at most one step for the write lock."""
    dropped: dict[str, int] = {}
    specs = db.query(
        "SELECT name, id, partitions, compact, retention_ms, retention_bytes FROM topics"
    )
    for name, tid, partitions, compact, retention_ms, retention_bytes in specs:
        topic, tid, n = str(name), int(tid), 0
        for p in range(int(partitions)):
            if compact:
                with db.write() as c:
                    n += _compact(c, topic, tid, p)
            if retention_ms is not None:
                with db.write() as c:
                    cut = _age_cutoff(c, tid, p, now_ms() - int(retention_ms))
                    n += _delete_prefix(c, topic, tid, p, cut)
            if retention_bytes is not None:
                with db.write() as c:
                    cut = _size_cutoff(c, topic, tid, p, int(retention_bytes))
                    n += _delete_prefix(c, topic, tid, p, cut)
        dropped[topic] = n
    return dropped


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
    lo, hi = rid_of(p, 0), rid_of(p, MAX_OFFSET)
    freed = c.execute(
        f"DELETE FROM t{tid} WHERE rid >= ?1 AND rid <= ?2 AND key IN "
        f"(SELECT key FROM t{tid} WHERE rid >= ?3 AND rid <= ?2 AND key IS NOT NULL) "
        f"AND rid < (SELECT MAX(n.rid) FROM t{tid} AS n "
        f"WHERE n.key = t{tid}.key AND n.rid >= ?1 AND n.rid <= ?2) RETURNING LENGTH(value)",
        (lo, hi, rid_of(p, int(mark))),
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
        (rid_of(p, 0), rid_of(p, MAX_OFFSET), oldest_ms),
    ).fetchone()
    return int(row[0]) if row is not None else rid_of(p, MAX_OFFSET) + 1


def _size_cutoff(c: sqlite3.Connection, topic: str, tid: int, p: int, limit: int) -> int:
    """First rid of partition ``p`` to keep so the kept values total at most ``limit`` bytes
    (inside a packed row when the cut falls there)."""
    (size,) = c.execute(
        "SELECT bytes FROM heads WHERE topic=? AND partition=?", (topic, p)
    ).fetchone()
    excess = int(size) - limit
    cut = rid_of(p, 0)
    if excess <= 0:
        return cut
    rows = c.execute(
        f"SELECT rid, n, COALESCE(size, LENGTH(value)) FROM t{tid} "
        "WHERE rid >= ? AND rid <= ? ORDER BY rid",
        (rid_of(p, 0), rid_of(p, MAX_OFFSET)),
    )
    try:
        for rid, n, length in rows:
            if n > 1 and length > excess:  # the cut falls inside this packed row
                for i, value_bytes in enumerate(_value_sizes(c, topic, tid, p, rid, n)):
                    excess -= value_bytes
                    if excess <= 0:
                        return int(rid) + i + 1
            excess -= int(length)
            cut = int(rid) + int(n)
            if excess <= 0:
                break
    finally:
        rows.close()
    return cut


def _value_sizes(
    c: sqlite3.Connection, topic: str, tid: int, p: int, rid: int, n: int
) -> list[int]:
    (value,) = c.execute(f"SELECT value FROM t{tid} WHERE rid=?", (rid,)).fetchone()
    return [len(v) for _k, v in unpack(value, n, f"{topic}[{p}] offset {rid & MAX_OFFSET}")]


def _delete_prefix(c: sqlite3.Connection, topic: str, tid: int, p: int, cut: int) -> int:
    """Delete partition ``p``'s messages before rid ``cut``; keep ``heads.bytes`` exact."""
    lo = rid_of(p, 0)
    if cut <= lo:
        return 0
    count, size = _trim_packed_row(c, topic, tid, p, lo, cut)
    rows, row_size = c.execute(
        f"SELECT COALESCE(SUM(n), 0), COALESCE(SUM(COALESCE(size, LENGTH(value))), 0) "
        f"FROM t{tid} WHERE rid >= ? AND rid < ?",
        (lo, cut),
    ).fetchone()
    if rows:
        c.execute(f"DELETE FROM t{tid} WHERE rid >= ? AND rid < ?", (lo, cut))
    count, size = count + int(rows), size + int(row_size)
    if size:
        c.execute(
            "UPDATE heads SET bytes = bytes - ? WHERE topic=? AND partition=?",
            (size, topic, p),
        )
    return count


def _trim_packed_row(
    c: sqlite3.Connection, topic: str, tid: int, p: int, lo: int, cut: int
) -> tuple[int, int]:
    """A packed row holding messages on both sides of ``cut`` is rewritten at ``cut`` with the
    messages it keeps, so the caller deletes only whole rows; (messages, bytes) dropped."""
    row = c.execute(
        f"SELECT rid, ts, value, n FROM t{tid} WHERE rid >= ? AND rid < ? "
        "ORDER BY rid DESC LIMIT 1",
        (lo, cut),
    ).fetchone()
    if row is None or int(row[0]) + int(row[3]) <= cut:
        return 0, 0
    rid, ts, value, n = int(row[0]), int(row[1]), bytes(row[2]), int(row[3])
    pairs = unpack(value, n, f"{topic}[{p}] offset {rid & MAX_OFFSET}")
    dropped, kept = pairs[: cut - rid], pairs[cut - rid :]
    c.execute(f"DELETE FROM t{tid} WHERE rid=?", (rid,))
    if len(kept) == 1:
        c.execute(f"INSERT INTO t{tid} VALUES (?,?,?,?,1,NULL)", (cut, ts, *kept[0]))
    else:
        kept_size = sum(len(v) for _k, v in kept)
        c.execute(
            f"INSERT INTO t{tid} VALUES (?,?,NULL,?,?,?)",
            (cut, ts, pack(kept), len(kept), kept_size),
        )
    return len(dropped), sum(len(v) for _k, v in dropped)
