"""The SQL source: poll a table with an incrementing tracking column, every row read once.

Where from: ``connection`` is either an ODBC connection string (``DRIVER={SQLite3};Database=...``,
``DSN=name``), used through pyodbc (imported only here: it needs unixODBC's ``libodbc``), or a
DB-API URL; ``sqlite:///relative.db`` / ``sqlite:////absolute.db`` is read with the stdlib
``sqlite3`` (read-only). The query has exactly one placeholder, ``?`` or ``:last``, which receives
the last tracked value, e.g. ``SELECT id, ts, msg FROM events WHERE id > ? ORDER BY id``. It
must order by the tracking column: a poll takes at most ``max_rows`` rows, and the position
after a poll is the largest tracking value it returned (values compared as the driver returns
them). A full poll is followed at once by the next; otherwise the source waits ``interval``.

Where the first run starts: ``initial_value`` if given; with ``start_at: end`` the current
maximum (found by running the query once and discarding its rows); otherwise everything: the
query is tried with the smallest 64-bit integer, then, for ODBC, the empty string and
0001-01-01, and the first value the database accepts is used (so id and timestamp columns
both work without configuration).

Durability (``base.Checkpointed``): the position advances only once every row of a poll has
been accepted by ``emit``; :meth:`SqlSource.checkpoint` snapshots it and :meth:`SqlSource.commit`
persists it (``<data_dir>/collect/<name>.sql.json``; temp file, fsync, rename) only after the
agent flushed the bus. A crash therefore re-reads at most the rows emitted since the last commit,
a clean stop neither skips nor repeats. Rows that share a tracking value with the last row of a
full poll are skipped when the query uses ``>``: use a unique column (an id), or a timestamp
fine enough that rows do not share it.

Failures (connection, query, a tracking column the query does not return) are logged,
counted as ``errors``, shown as a problem on the health page, and retried with a backoff from
``interval`` doubling up to five minutes; they never stop the agent. All database calls run in
one thread of the source's own, so a driver sees one thread and the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import importlib
import json
import logging
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from logfactory.collect.sources.base import Emit
from logfactory.config import SourceConfig, parse_duration
from logfactory.record import Record, make_record
from logfactory.stats import StatsRegistry

__all__ = ["SqlSource", "decode_value", "encode_value", "parse_connection", "prepare_query"]

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 300.0
_INT_MIN = -(2**63)
_NAMED = re.compile(r"(?<![:\w]):last\b")
_LITERALS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")
_DB_NAME = re.compile(r"(?i)(?:^|;)\s*(?:database|dbq|dsn)\s*=\s*([^;]*)")
_EXAMPLE = "SELECT id, msg FROM events WHERE id > ? ORDER BY id"
_UNSET: Any = object()  # no position yet (distinct from a tracked NULL)


def parse_connection(connection: str) -> tuple[str, str, str]:
    """``(kind, target, db_name)``: kind ``sqlite`` (target = a file path) or ``odbc`` (target =
    the connection string); raises ValueError naming the supported forms."""
    text = connection.strip()
    scheme = re.match(r"^([A-Za-z][\w+.-]*)://", text)
    if scheme:
        if scheme.group(1).lower() != "sqlite":
            raise ValueError(
                f"unsupported connection URL scheme {scheme.group(1)!r}: use sqlite:///PATH.db "
                "(stdlib sqlite3) or an ODBC connection string (DRIVER={...};... or DSN=name)"
            )
        path = text[len("sqlite:///") :] if text.startswith("sqlite:///") else ""
        if not path:
            raise ValueError("write a SQLite URL as sqlite:///relative.db or sqlite:////abs.db")
        return "sqlite", path, Path(path).stem
    if "=" not in text:
        raise ValueError(
            f"{connection!r} is neither a DB-API URL (sqlite:///PATH.db) nor an ODBC connection "
            "string (DRIVER={SQLite3};Database=PATH or DSN=name)"
        )
    m = _DB_NAME.search(text)
    name = Path(m.group(1).strip()).stem if m and m.group(1).strip() else ""
    return "odbc", text, name


def prepare_query(query: str) -> str:
    """The query with its one placeholder as ``?`` (both drivers take qmark); raises ValueError
    unless there is exactly one ``?`` or ``:last`` outside string literals."""
    bare = _LITERALS.sub("''", query)
    named = len(_NAMED.findall(bare))
    count = bare.count("?") + named
    if count != 1:
        raise ValueError(
            "the query needs exactly one placeholder for the last tracked value (? or :last), "
            f"found {count}; e.g. " + _EXAMPLE
        )
    return _NAMED.sub("?", query) if named else query


def encode_value(value: Any) -> dict[str, Any]:
    """A tracked value as JSON that :func:`decode_value` turns back into the same type."""
    if isinstance(value, bool | int | float | str) or value is None:
        return {"t": type(value).__name__, "v": value}
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return {"t": type(value).__name__, "v": value.isoformat()}
    if isinstance(value, Decimal):
        return {"t": "decimal", "v": str(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"t": "bytes", "v": base64.b64encode(bytes(value)).decode()}
    return {"t": "str", "v": str(value)}


_DECODE: dict[str, Any] = {
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "decimal": Decimal,
    "bytes": base64.b64decode,
}


def decode_value(doc: dict[str, Any]) -> Any:
    """Inverse of :func:`encode_value`; raises ValueError/KeyError/TypeError if damaged."""
    kind, value = doc["t"], doc["v"]
    if kind in _DECODE:
        return _DECODE[kind](value)
    if kind not in ("bool", "int", "float", "str", "NoneType"):
        raise ValueError(f"unknown value type {kind!r}")
    return value


def _safe(value: object) -> object:
    """``to_builtins`` fallback for driver types msgspec does not know (UUIDs come as str)."""
    return str(value)


def _text(value: object) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    return value if isinstance(value, str) else str(value)


def _newest(values: list[Any], last: Any) -> Any:
    present = [v for v in values if v is not None]
    if not present:
        return last
    try:
        return max(present)
    except TypeError:  # mixed types (SQLite is dynamically typed): trust the query's order
        return present[-1]


class SqlSource:
    """Polls ``config.query``; see the module docstring for the contract."""

    def __init__(
        self,
        config: SourceConfig,
        *,
        data_dir: Path,
        name: str | None = None,
        registry: StatsRegistry | None = None,
        hostname: str = "-",
    ) -> None:
        if not config.connection or not config.query or not config.tracking_column:
            raise ValueError("a sql source needs 'connection', 'query' and 'tracking_column'")
        self.kind, self.target, db_name = parse_connection(config.connection)
        self.query = prepare_query(config.query)
        self.interval = parse_duration(config.interval)
        self._max_backoff = max(MAX_BACKOFF_S, self.interval)
        if config.max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        self.name = name or config.name or "sql"
        self.tag = config.tag or "sql"
        self.registry = registry or StatsRegistry("sql")
        self.group = f"source:{self.name}"
        self.tracking_column = config.tracking_column
        self.host_column = config.host_column
        self.message_column = config.message_column
        self.max_rows = config.max_rows
        self.initial_value = config.initial_value
        self.default_host = config.host or db_name or hostname
        self.state_path = Path(data_dir) / "collect" / f"{self.name}.sql.json"
        self._position: Any = _UNSET  # tracking value after the last fully emitted poll
        self._find_end = config.start_at == "end" and config.initial_value is None
        self._conn: Any = None
        self._written: bytes | None = None
        self._write_lock = threading.Lock()
        self._ready = asyncio.Event()
        self._error: BaseException | None = None

    async def started(self) -> None:
        await self._ready.wait()
        if self._error is not None:
            raise self._error

    # -- the loop --------------------------------------------------------------------------
    async def run(self, emit: Emit, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        db = ThreadPoolExecutor(1, thread_name_prefix=f"sql-{self.name}")
        try:
            try:
                await loop.run_in_executor(db, self._prepare)
            except BaseException as exc:
                self._error = exc
                raise
            finally:
                self._ready.set()
            failures = 0
            while not stop.is_set():
                try:
                    records, position, full = await loop.run_in_executor(db, self._poll)
                except Exception as exc:
                    failures += 1
                    delay = min(self.interval * 2 ** (failures - 1), self._max_backoff)
                    self._failed(exc, delay)
                    await loop.run_in_executor(db, self._disconnect)
                else:
                    if failures:
                        failures = 0
                        self.registry.problem(self.group, None)
                    for record in records:
                        await emit(record)
                    if position is not _UNSET:
                        self._position = position
                    if not records and position is not _UNSET:
                        await self.commit(position)  # start_at: end found; nothing in flight
                    delay = 0.0 if full else self.interval
                if delay:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), delay)
                else:
                    await asyncio.sleep(0)
        finally:
            with contextlib.suppress(Exception):
                await loop.run_in_executor(db, self._disconnect)
            db.shutdown(wait=False)

    def _failed(self, exc: Exception, delay: float) -> None:
        text = f"sql source {self.name!r}: {type(exc).__name__}: {exc}"
        log.warning("%s; retrying in %.1f s", text, delay)
        self.registry.add(self.group, "errors")
        self.registry.problem(self.group, text)

    # -- database work (the source's thread) -----------------------------------------------
    def _prepare(self) -> None:
        if self.kind == "odbc":
            try:
                importlib.import_module("pyodbc")
            except ImportError as exc:
                raise RuntimeError(
                    f"sql source {self.name!r} needs pyodbc and unixODBC (libodbc): {exc}"
                ) from exc
        self._load_state()

    def _connect(self) -> Any:
        if self._conn is None:
            if self.kind == "sqlite":
                import sqlite3

                uri = Path(self.target).absolute().as_uri() + "?mode=ro"  # never creates it
                self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            else:
                pyodbc = importlib.import_module("pyodbc")  # untyped: no PEP 561 stubs
                self._conn = pyodbc.connect(self.target, autocommit=True)
        return self._conn

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _poll(self) -> tuple[list[Record], Any, bool]:
        """(records, new position or _UNSET, whether the poll was full)."""
        conn = self._connect()
        if self._position is not _UNSET:
            return self._fetch(conn, self._position)
        if self.initial_value is not None:
            return self._fetch(conn, self.initial_value)
        if self._find_end:
            end = self._current_max(conn)
            self._find_end = False
            return [], end, False
        first_error: Exception | None = None
        for value in self._candidates():
            try:
                return self._fetch(conn, value)
            except Exception as exc:  # the database did not accept this type: try the next
                first_error = first_error or exc
        assert first_error is not None
        raise first_error

    def _execute(self, conn: Any, value: Any) -> tuple[Any, list[str], int]:
        cur = conn.cursor()
        try:
            cur.execute(self.query, (value,))
            names = [str(d[0]) for d in cur.description or ()]
        except BaseException:
            cur.close()
            raise
        lower = [n.lower() for n in names]
        want = self.tracking_column.lower()
        if want not in lower:
            cur.close()
            raise LookupError(f"tracking_column {self.tracking_column!r} is not among the "
                              f"query's columns {names}")  # fmt: skip
        return cur, names, lower.index(want)

    def _column(self, names: list[str], column: str | None) -> int | None:
        if column is None:
            return None
        lower = [n.lower() for n in names]
        if column.lower() not in lower:
            raise LookupError(f"column {column!r} is not among the query's columns {names}")
        return lower.index(column.lower())

    def _fetch(self, conn: Any, value: Any) -> tuple[list[Record], Any, bool]:
        cur, names, ti = self._execute(conn, value)
        try:
            hi = self._column(names, self.host_column)
            mi = self._column(names, self.message_column)
            rows = [tuple(r) for r in cur.fetchmany(self.max_rows)]
        finally:
            cur.close()
        if not rows:
            return [], _UNSET, False
        encode = msgspec.json.encode
        to_builtins = msgspec.to_builtins
        out: list[Record] = []
        for row in rows:
            doc = to_builtins(dict(zip(names, row, strict=True)), enc_hook=_safe)
            meta: dict[str, Any] = {"tracking": doc[names[ti]]}
            if mi is None:
                line = encode(doc).decode()
            else:
                line = _text(row[mi]) if row[mi] is not None else ""
                meta["row"] = doc
            host = self.default_host
            if hi is not None and row[hi] is not None:
                host = _text(row[hi])
            out.append(make_record(self.tag, host, line, meta))
        position = _newest([r[ti] for r in rows], self._position)
        return out, position, len(rows) >= self.max_rows

    def _candidates(self) -> list[Any]:
        if self.kind == "sqlite":  # SQLite compares any type with an integer
            return [_INT_MIN]
        return [_INT_MIN, "", dt.datetime(1, 1, 1)]

    def _current_max(self, conn: Any) -> Any:
        """``start_at: end``: the largest tracking value the query returns now (runs it once,
        discarding the rows); ``_UNSET`` when it returns none (then the start is the start)."""
        first_error: Exception | None = None
        for value in self._candidates():
            try:
                cur, _names, ti = self._execute(conn, value)
            except LookupError:
                raise
            except Exception as exc:
                first_error = first_error or exc
                continue
            best: Any = _UNSET
            try:
                while rows := cur.fetchmany(self.max_rows):
                    best = _newest([r[ti] for r in rows], best)
            finally:
                cur.close()
            return best
        assert first_error is not None
        raise first_error

    # -- positions -------------------------------------------------------------------------
    def _load_state(self) -> None:
        try:
            raw = self.state_path.read_bytes()
        except FileNotFoundError:
            return
        try:
            doc = json.loads(raw)
            if doc["tracking_column"] != self.tracking_column:
                log.warning(
                    "sql source %r: saved position is for column %r, not %r; starting over",
                    self.name, doc["tracking_column"], self.tracking_column,
                )  # fmt: skip
                return
            self._position = decode_value(doc["last"])
            self._written = raw
        except (ValueError, KeyError, TypeError) as exc:
            # re-reading beats skipping: a damaged file starts from the initial value
            log.error("sql source %r: ignoring unreadable %s (%s)", self.name, self.state_path,
                      exc)  # fmt: skip

    def checkpoint(self) -> object:
        """The position after the last poll whose rows were all emitted."""
        return self._position

    async def commit(self, token: object) -> None:
        if token is _UNSET:
            return
        await asyncio.get_running_loop().run_in_executor(None, self._write_state, token)

    def _write_state(self, token: object) -> None:
        doc = {"version": 1, "tracking_column": self.tracking_column, "last": encode_value(token)}
        data = json.dumps(doc).encode()
        with self._write_lock:
            if data == self._written:
                return
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.state_path.with_name(self.state_path.name + ".tmp")
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.state_path)
            dir_fd = os.open(self.state_path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            self._written = data
