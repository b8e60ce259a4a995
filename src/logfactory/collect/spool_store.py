"""The spool's file on disk: an SQLite table of the messages accepted while the bus was down.

:class:`~logfactory.collect.spool.SpoolingProducer` decides *when* to spool and resend; this is
*where*: a table ``spool(seq, topic, key, value)`` in WAL mode with ``synchronous=FULL``, so a
committed batch is on disk when :meth:`SpoolStore.append` returns. Rows are read back in
``seq`` order and deleted once the bus confirmed them; freed pages are returned to the file
system (``auto_vacuum=INCREMENTAL``) when the spool has drained. The database is opened on
first use: a collector whose bus never fails never creates the file.

A spool file SQLite cannot read (a disk that lied about a write, a file someone truncated) is
moved aside at start, not retried: a collector that refuses to start over it would crash-loop
and lose everything that arrives meanwhile. The damaged file is kept for a human to salvage.

Not thread-safe: the caller serialises every call (the producer's ``_io`` lock). One spool file
belongs to one running collector; two processes must not share it.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

from logfactory.bus.base import BusError
from logfactory.stats import StatsRegistry

__all__ = ["Row", "SpoolStore"]

# logged as the spool, under the logger name it had before this module was split off
log = logging.getLogger("logfactory.collect.spool")

Row = tuple[int, str, bytes | None, bytes]  # seq, topic, key, value: the table's column order

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS spool "
    "(seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, key BLOB, value BLOB NOT NULL)"
)


class SpoolStore:
    """The spool database at ``path``; ``registry`` counts quarantined files."""

    def __init__(self, path: Path, registry: StatsRegistry | None = None) -> None:
        self.path = path
        self._registry = registry
        self._db: sqlite3.Connection | None = None

    @property
    def is_open(self) -> bool:
        return self._db is not None

    def _open(self) -> sqlite3.Connection:
        """The spool database, opened on first use."""
        if self._db is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            except (OSError, sqlite3.Error) as exc:
                raise BusError(f"cannot open the spool {self.path}: {exc}") from exc
            try:
                db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # before the table: frees pages
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")  # a commit is on disk when it returns
                db.execute(_SCHEMA)
            except sqlite3.Error as exc:
                db.close()
                raise BusError(f"cannot open the spool {self.path}: {exc}") from exc
            self._db = db
        return self._db

    def recover(self) -> tuple[int, int, int] | None:
        """What a previous run left: ``(rows, bytes, last seq)``, or None when there is nothing
        (the database is then closed again) or the file was damaged and moved aside. Raises
        :class:`BusError` when the file cannot be opened for another reason (e.g. permissions):
        the operator must see that."""
        try:
            db = self._open()
            (check,) = db.execute("PRAGMA quick_check").fetchone()
            if check != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {check}")
            count, size, last = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(value) + COALESCE(LENGTH(key), 0)), 0),"
                " COALESCE(MAX(seq), 0) FROM spool"
            ).fetchone()
        except (sqlite3.DatabaseError, BusError) as exc:
            cause = exc.__cause__ if isinstance(exc, BusError) else exc
            if not isinstance(cause, sqlite3.DatabaseError):
                raise  # not damage (e.g. no permission): the operator must see it
            self._quarantine(cause)
            return None
        if not count:
            db.close()
            self._db = None
            return None
        return int(count), int(size), int(last)

    def _quarantine(self, exc: sqlite3.DatabaseError) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        moved = Path(f"{self.path}.damaged-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                src.replace(Path(f"{moved}{suffix}"))
        if self._registry is not None:
            self._registry.add("spool", "quarantined")
        log.error("spool %s is damaged (%s): moved to %s, starting an empty spool",
                  self.path, exc, moved)  # fmt: skip

    def append(self, batch: list[Row]) -> None:
        """Write ``batch`` in one fsynced transaction, all or nothing; raises :class:`BusError`."""
        try:
            db = self._open()
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("INSERT INTO spool VALUES (?,?,?,?)", batch)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except (sqlite3.Error, BusError) as exc:
            raise BusError(f"cannot write the spool {self.path}: {exc}") from exc

    def oldest(self, limit: int) -> list[Row]:
        """Up to ``limit`` rows in ``seq`` order ([] while not open); raises :class:`BusError`."""
        if self._db is None:
            return []
        try:
            rows: list[Row] = self._db.execute(
                "SELECT seq, topic, key, value FROM spool ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        except sqlite3.Error as exc:
            raise BusError(f"cannot read the spool {self.path}: {exc}") from exc
        return rows

    def delete_upto(self, seq: int) -> tuple[int, int]:
        """Delete the rows up to ``seq``: ``(rows, bytes)`` deleted, (0, 0) while not open.
        Raises :class:`sqlite3.Error` (the rows then stay)."""
        if self._db is None:
            return 0, 0
        count, size = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(value) + COALESCE(LENGTH(key), 0)), 0)"
            " FROM spool WHERE seq <= ?",
            (seq,),
        ).fetchone()
        self._db.execute("DELETE FROM spool WHERE seq <= ?", (seq,))
        return int(count), int(size)

    def vacuum(self) -> None:
        """Give freed pages back to the file system; a failure is only logged."""
        if self._db is not None:
            try:
                self._db.execute("PRAGMA incremental_vacuum")
            except sqlite3.Error as exc:  # only disk space is at stake
                log.warning("cannot shrink the spool %s: %s", self.path, exc)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
