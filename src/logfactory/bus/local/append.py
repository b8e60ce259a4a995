"""The embedded bus's append path: the one object every writer of the bus appends through.

Why one object: the in-process producer's writer thread, a consumer's transaction and the
writer process (:mod:`logfactory.bus.local.writer_process`) all append messages, and they must
place them alike (same partitioning, same round-robin counter, same packed rows, same
``heads`` bookkeeping). Each holds an :class:`Appender` and none knows the bus class.
"""

from __future__ import annotations

import itertools
import operator
import random
import sqlite3
import time
import zlib
from collections.abc import Sequence

from logfactory.bus.base import BusError
from logfactory.bus.local.batch import groups, pack
from logfactory.bus.local.db import MAX_OFFSET, Db, Entry, is_busy, now_ms, rid_of
from logfactory.bus.local.topics import TopicTable

__all__ = ["BUSY_RETRY_S", "ROWS_PER_INSERT", "Appender"]

_KEY = operator.itemgetter(1)
_VALUE = operator.itemgetter(2)
ROWS_PER_INSERT = 16  # measured: 16 rows a statement beat 1, 8 and 32 (and stays far below
# SQLite's limit of bound variables)
_MULTI = ",".join(["(?,?,?,?)"] * ROWS_PER_INSERT)
BUSY_RETRY_S = 60.0


def _insert_rows(c: sqlite3.Connection, tid: int, flat: list[object]) -> None:
    """Insert rows given as one flat list of (rid, time, key, value) values into ``t<tid>``."""
    step = 4 * ROWS_PER_INSERT
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
    messages each (:mod:`logfactory.bus.local.batch`); their value bytes, for ``heads``."""
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


class Appender:
    """Appends messages to the topics of ``topics``, shared by every writer of one bus handle
    so that they share its topic cache and round-robin counter."""

    def __init__(self, topics: TopicTable) -> None:
        self._topics = topics
        self._rr = itertools.count(random.randrange(1 << 20))

    def append(self, c: sqlite3.Connection, batch: Sequence[Entry]) -> None:
        """Append messages inside the caller's write transaction, in the given order.

        Topics were resolved when the messages were queued, so this never creates one (which
        would wait on the very write lock this transaction holds).

        This is the embedded bus's hot path (a collector appends every line here), so the
        per-message Python work is kept to placing the message in its partition's list. Then,
        partition by partition (the b-tree only ever appends), consecutive messages share
        packed rows (:mod:`logfactory.bus.local.batch`: a row costs the same whatever it
        holds); compacted topics keep one message a row, inserted ``ROWS_PER_INSERT`` to a
        statement, which halves the sqlite3 module's parameter binding.
        """
        now = now_ms()
        topics = self._topics
        cache = topics.cache
        rr = self._rr
        crc32 = zlib.crc32
        compacted = topics.compacted
        per_topic: dict[str, tuple[int, list[list[Entry]]]] = {}
        for entry in batch:
            topic, key, _value = entry
            slot = per_topic.get(topic)
            if slot is None:
                info = cache.get(topic) or topics.find(topic)
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

    def append_retrying(self, db: Db, batch: Sequence[Entry]) -> None:
        """Append ``batch`` in one write transaction on ``db``, retried while it is busy.

        Retrying is safe because a transaction that met a busy database was rolled back:
        nothing of it was written. Another process holding the write lock past SQLite's busy
        timeout (a long maintenance step, a reader's checkpoint) is waited out for up to
        ``BUSY_RETRY_S``; any other error is the caller's to report.
        """
        deadline = time.monotonic() + BUSY_RETRY_S
        delay = 0.005
        while True:
            try:
                with db.write() as c:
                    self.append(c, batch)
                return
            except sqlite3.OperationalError as exc:
                if not is_busy(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
