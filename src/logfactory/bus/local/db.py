# Table names here are t<integer id> from the bus's own topics table, never user text.
"""The embedded bus's storage layer: one SQLite connection, the schema, and the row layout.

Everything that knows how a message is stored lives here, so the bus, producer, consumer and
maintenance modules agree on it: a topic's table ``t<id>`` has an integer primary key packing
``partition << 40 | offset`` (see :func:`rid_of`), and ``heads`` holds each partition's next
offset and stored value bytes. The design and guarantees are described in
:mod:`logfactory.bus.local`.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from logfactory.bus.base import BusError
from logfactory.errors import DamagedBusError, MissingBusError

__all__ = [
    "BUS_ID",
    "CREATED_MS",
    "DB_NAME",
    "MAX_OFFSET",
    "MAX_PARTITIONS",
    "SCHEMA_VERSION",
    "TOPIC_TABLE",
    "DamagedBusError",
    "Db",
    "Entry",
    "MissingBusError",
    "as_bytes",
    "create_schema",
    "damage_error",
    "damaged_text",
    "init_schema",
    "integrity_problems",
    "is_busy",
    "is_damage",
    "marks",
    "new_bus_id",
    "now_ms",
    "process_start",
    "rid_of",
    "topic_heads",
]

_SHIFT = 40
LEAN_CACHE_KIB = 256  # page cache of a lean (reader) connection, see Db.lean
MAX_OFFSET = (1 << _SHIFT) - 1
MAX_PARTITIONS = 1 << 22

# One message waiting to be appended: (topic, key, value).
Entry = tuple[str, bytes | None, bytes]

# 3: topic tables gained ``n`` (messages in the row, see logfactory.bus.local.batch)
SCHEMA_VERSION = 3
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
DB_NAME = "bus.sqlite3"  # the database's file name in the bus directory
# ``meta`` names of the bus's identity, written when its tables are created (create_schema)
BUS_ID = "bus_id"
CREATED_MS = "created_ms"
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
# Version 2 stored one message a row; every row it wrote is a one-message row in version 3.
# ``n``: messages in the row; ``size``: their value bytes when packed (NULL: LENGTH(value)).
_ADD_ROW_COUNT = (
    "ALTER TABLE t{tid} ADD COLUMN n INTEGER NOT NULL DEFAULT 1",
    "ALTER TABLE t{tid} ADD COLUMN size INTEGER",
)
TOPIC_TABLE = (
    "CREATE TABLE t{tid} (rid INTEGER PRIMARY KEY, ts INTEGER NOT NULL, key BLOB, "
    "value BLOB NOT NULL, n INTEGER NOT NULL DEFAULT 1, size INTEGER)"
)


_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
# Primary result codes that say the file itself is wrong, never a passing condition.
_DAMAGE_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
_HAVE_PROC = os.path.isdir("/proc/self")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def rid_of(partition: int, offset: int) -> int:
    """The row id of ``offset`` in ``partition``: a partition is one contiguous rid range."""
    return (partition << _SHIFT) | offset


def is_damage(exc: BaseException) -> bool:
    """Whether SQLite says the file is damaged (corrupt, or not a database); busy, disk full or
    permissions are not damage."""
    code = getattr(exc, "sqlite_errorcode", None)
    return (
        isinstance(exc, sqlite3.DatabaseError)
        and code is not None
        and (code & 0xFF in _DAMAGE_CODES)
    )


def damage_error(path: Path, exc: BaseException) -> DamagedBusError | None:
    """The :class:`DamagedBusError` that ``exc`` means (see :func:`is_damage`), else None."""
    if not is_damage(exc):
        return None
    return DamagedBusError(damaged_text(path, f"SQLite: {exc}"))


def damaged_text(path: Path, detail: str) -> str:
    """The refusal of a damaged database: which file, what SQLite found, the way out."""
    return (
        f"{path} is damaged ({detail}): stop every node on this bus, then `logfactory bus "
        "check -c CONFIG` shows what is readable and `logfactory bus repair -c CONFIG` copies "
        "it into a new database (the damaged file is kept beside it)"
    )


def is_busy(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and (
        getattr(exc, "sqlite_errorcode", None) in _BUSY_CODES or "locked" in str(exc)
    )


def as_bytes(value: object, key: object) -> tuple[bytes, bytes | None]:
    """Bytes-like payloads as ``bytes``; reject what SQLite would store as TEXT or INTEGER and
    hand back to consumers as something other than ``bytes``."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"message value must be bytes, not {type(value).__name__}")
    if key is not None and not isinstance(key, bytes | bytearray | memoryview):
        raise TypeError(f"message key must be bytes or None, not {type(key).__name__}")
    return bytes(value), None if key is None else bytes(key)


def process_start(pid: int) -> int | None:
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


class Db:
    """One SQLite connection guarded by a lock, with the pragmas every user needs.

    SQLite's "corrupt" and "not a database" errors leave it as :class:`DamagedBusError`
    (naming the file and the repair), never as a bare ``sqlite3.DatabaseError``."""

    def __init__(self, path: Path, fsync: bool, *, create: bool = True) -> None:
        """``create=False`` opens an existing database only (SQLite's ``mode=rw``): a missing
        file raises :class:`MissingBusError` instead of being created."""
        self.path = path
        try:
            self.conn = sqlite3.connect(
                str(path) if create else f"{path.absolute().as_uri()}?mode=rw",
                timeout=30.0,
                isolation_level=None,
                check_same_thread=False,
                uri=not create,
            )
        except sqlite3.OperationalError as exc:
            if create:
                raise
            raise MissingBusError(f"{path}: no bus database here ({exc})") from None
        self.lock = threading.RLock()
        self.closed = False
        try:
            self._setup(fsync)
        except BaseException as exc:
            self.conn.close()
            self.translate(exc)
            raise

    def _setup(self, fsync: bool) -> None:
        self.conn.execute("PRAGMA busy_timeout=30000")
        deadline = time.monotonic() + 30.0
        while True:  # switching to WAL needs a moment alone with a brand-new file
            try:
                mode = str(self.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0])
                break
            except sqlite3.OperationalError as exc:
                if not is_busy(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        if mode.lower() != "wal":
            raise BusError(
                f"{self.path}: SQLite cannot use WAL here (got {mode!r}); use a local disk"
            )
        self.conn.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
        self.conn.execute("PRAGMA journal_size_limit=67108864")
        self.conn.execute("PRAGMA cache_size=-16384")
        self.conn.execute("PRAGMA mmap_size=268435456")

    def translate(self, exc: BaseException) -> None:
        """Raise :class:`DamagedBusError` if ``exc`` says the database is damaged; callers
        re-raise ``exc`` itself otherwise."""
        damaged = damage_error(self.path, exc)
        if damaged is not None:
            raise damaged from exc

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE transaction: writers queue on SQLite's lock instead of failing late."""
        with self.lock:
            self.check()
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self.conn
                    self.conn.execute("COMMIT")
                except BaseException:
                    if self.conn.in_transaction:
                        self.conn.execute("ROLLBACK")
                    raise
            except sqlite3.DatabaseError as exc:
                self.translate(exc)
                raise

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: one consistent snapshot across several statements."""
        with self.lock:
            self.check()
            try:
                self.conn.execute("BEGIN")
                try:
                    yield self.conn
                finally:
                    self.conn.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                self.translate(exc)
                raise

    def data_version(self) -> int:
        """Changes whenever another connection commits: the cheap "anything new?" probe."""
        with self.lock:
            self.check()
            try:
                row = self.conn.execute("PRAGMA data_version").fetchone()
            except sqlite3.DatabaseError as exc:
                self.translate(exc)
                raise
        return int(row[0])

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """All rows of one statement (its own snapshot)."""
        with self.lock:
            self.check()
            try:
                return self.conn.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as exc:
                self.translate(exc)
                raise

    def lean(self) -> None:
        """Make this a connection for one reader among many (an SSE stream, a watcher): a
        small page cache and no memory map. The defaults above suit the few connections that
        move the bulk of the data; on one of a hundred streams reading from the start they
        cost up to 16 MiB of cache each, plus a map of up to 256 MiB whose touched pages count
        in the process's RSS once per connection. A lean reader reads through the OS's page
        cache instead, which all connections share."""
        with self.lock:
            self.check()
            self.conn.execute(f"PRAGMA cache_size=-{LEAN_CACHE_KIB}")
            self.conn.execute("PRAGMA mmap_size=0")

    def check(self) -> None:
        if self.closed:
            raise BusError("this bus handle is closed")

    def close(self) -> None:
        with self.lock:
            if not self.closed:
                self.closed = True
                self.conn.close()


def init_schema(db: Db, path: Path, *, create: bool = True) -> None:
    """Create the tables in a new database or migrate an older layout in place.

    Checked inside the write transaction, so processes opening a new directory at once create
    the schema exactly once; a layout this version does not know is refused, not guessed at.
    Without ``create`` an empty database (a node that is creating it right now) raises
    :class:`MissingBusError`.
    """
    [(version,)] = db.query("PRAGMA user_version")
    if version == SCHEMA_VERSION:
        return
    with db.write() as c:
        (version,) = c.execute("PRAGMA user_version").fetchone()
        tables = {str(r[0]) for r in c.execute("SELECT name FROM sqlite_master")}
        if version == 0 and not tables:
            if not create:
                raise MissingBusError(f"{path}: the bus has no tables yet")
            create_schema(c)
        elif version in (0, 2) and tables >= _V1_TABLES:
            if version == 0:
                for stmt in _MIGRATE_V1.split(";"):
                    if stmt.strip():
                        c.execute(stmt)
            for (tid,) in c.execute("SELECT id FROM topics").fetchall():
                for stmt in _ADD_ROW_COUNT:
                    c.execute(stmt.format(tid=int(tid)))
        elif version != SCHEMA_VERSION:
            raise BusError(
                f"{path} has bus schema {version}, this version needs "
                f"{SCHEMA_VERSION}; move the old directory away (or drain it with the "
                "version that wrote it)"
            )
        c.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def create_schema(c: sqlite3.Connection, bus_id: int | None = None) -> int:
    """The tables of an empty bus, inside the caller's transaction; its id (:data:`BUS_ID`):
    ``bus_id``, or a new random one. The id and the time of creation go into ``meta``, where
    the directory's marker (:mod:`logfactory.bus.local.marker`) finds them."""
    for stmt in _SCHEMA.split(";"):
        if stmt.strip():
            c.execute(stmt)
    bus_id = new_bus_id() if bus_id is None else bus_id
    c.executemany("INSERT INTO meta VALUES (?, ?)", [(BUS_ID, bus_id), (CREATED_MS, now_ms())])
    c.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    return bus_id


def new_bus_id() -> int:
    """A random 62-bit id: two buses never share one by chance."""
    return secrets.randbits(62) | 1


def integrity_problems(conn: sqlite3.Connection, pragma: str, limit: int = 10) -> list[str]:
    """What SQLite's ``quick_check`` or ``integrity_check`` finds wrong (at most ``limit``
    lines; empty when the database is sound). A database too damaged for the check to run is
    one problem: the error itself. Other errors (busy, I/O) are the caller's."""
    if pragma not in ("quick_check", "integrity_check"):
        raise ValueError(pragma)
    try:
        rows = conn.execute(f"PRAGMA {pragma}({int(limit)})").fetchall()
    except sqlite3.DatabaseError as exc:
        if not is_damage(exc):
            raise
        return [str(exc)]
    lines = [line.strip() for r in rows for line in str(r[0]).splitlines()]
    if lines == ["ok"]:
        return []
    return [line for line in lines if line and not line.startswith("*** in database")]


def topic_heads(db: Db) -> dict[str, int]:
    """Per topic, the sum of its partitions' next offsets: it moves whenever the topic gets a
    message, so a watcher compares two of these to tell which topics changed (one small
    query, whatever the number of messages)."""
    rows = db.query("SELECT topic, SUM(next) FROM heads GROUP BY topic")
    return {str(topic): int(total) for topic, total in rows}


def marks(c: sqlite3.Connection, topic: str, tid: int, p: int) -> tuple[int, int]:
    """(low, high) watermarks of partition ``p``: low is the high mark once retention emptied it."""
    (high,) = c.execute(
        "SELECT next FROM heads WHERE topic=? AND partition=?", (topic, p)
    ).fetchone()
    (low,) = c.execute(
        f"SELECT MIN(rid) FROM t{tid} WHERE rid >= ? AND rid <= ?",
        (rid_of(p, 0), rid_of(p, MAX_OFFSET)),
    ).fetchone()
    return (int(low) & MAX_OFFSET if low is not None else int(high)), int(high)
