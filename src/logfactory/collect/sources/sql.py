"""The SQL source: poll a table with an incrementing tracking column, every row read once.

Where from: an ODBC connection string or a ``sqlite:///`` URL, and a query with one placeholder
for the last tracked value (:mod:`.sql_connection`). The query must order by the tracking
column: a poll takes at most ``max_rows`` rows, and the position after a poll is the largest
tracking value it returned (values compared as the driver returns them). A full poll is
followed at once by the next; otherwise the source waits ``interval``.

Where the first run starts: ``initial_value`` if given; with ``start_at: end`` the current
maximum (found by running the query once and discarding its rows); otherwise everything: the
query is tried with the smallest 64-bit integer, then, for ODBC, the empty string and
0001-01-01, and the first value the database accepts is used (so id and timestamp columns
both work without configuration).

Durability (``base.Checkpointed``): the position advances only once every row of a poll has
been accepted by ``emit``; :meth:`SqlSource.checkpoint` snapshots it and :meth:`SqlSource.commit`
persists it (:mod:`.sql_position`) only after the agent flushed the bus. A crash therefore
re-reads at most the rows emitted since the last commit, a clean stop neither skips nor
repeats. Rows that share a tracking value with the last row of a full poll are skipped when the
query uses ``>``: use a unique column (an id), or a timestamp fine enough that rows do not
share it.

Failures (connection, query, a tracking column the query does not return) are logged,
counted as ``errors``, shown as a problem on the health page, and retried with a backoff from
``interval`` doubling up to five minutes; they never stop the agent. All database calls run in
one thread of the source's own, so a driver sees one thread and the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec

from logfactory.collect.sources.base import Emit
from logfactory.collect.sources.context import SourceContext
from logfactory.collect.sources.sql_connection import (
    connect,
    parse_connection,
    prepare_query,
    require_driver,
)
from logfactory.collect.sources.sql_position import UNSET, PositionFile, decode_value, encode_value
from logfactory.config import SqlSourceConfig
from logfactory.record import Record, make_record

__all__ = ["SqlSource", "decode_value", "encode_value", "parse_connection", "prepare_query"]

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 300.0
_INT_MIN = -(2**63)


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
        config: SqlSourceConfig,
        ctx: SourceContext,
    ) -> None:
        if not config.connection or not config.query or not config.tracking_column:
            raise ValueError("a sql source needs 'connection', 'query' and 'tracking_column'")
        self.kind, self.target, db_name = parse_connection(config.connection)
        self.query = prepare_query(config.query)
        self.interval = float(config.interval)
        self._max_backoff = max(MAX_BACKOFF_S, self.interval)
        if config.max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        self.name = ctx.name or config.name or "sql"
        self.tag = config.tag or "sql"
        self.registry = ctx.registry
        self._clock = ctx.clock
        self.group = f"source:{self.name}"
        self.tracking_column = config.tracking_column
        self.host_column = config.host_column
        self.message_column = config.message_column
        self.max_rows = config.max_rows
        self.initial_value = config.initial_value
        self.default_host = config.host or db_name or ctx.hostname
        self.state_path = Path(ctx.data_dir) / "collect" / f"{self.name}.sql.json"
        self._state = PositionFile(self.state_path, self.tracking_column, self.name)
        self._position: Any = UNSET  # tracking value after the last fully emitted poll
        self._find_end = config.start_at == "end" and config.initial_value is None
        self._conn: Any = None
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
                    if position is not UNSET:
                        self._position = position
                    if not records and position is not UNSET:
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
        require_driver(self.kind, self.name)
        position = self._state.load()
        if position is not UNSET:
            self._position = position

    def _connect(self) -> Any:
        if self._conn is None:
            self._conn = connect(self.kind, self.target)
        return self._conn

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _poll(self) -> tuple[list[Record], Any, bool]:
        """(records, new position or UNSET, whether the poll was full)."""
        conn = self._connect()
        if self._position is not UNSET:
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
            return [], UNSET, False
        encode = msgspec.json.encode
        to_builtins = msgspec.to_builtins
        out: list[Record] = []
        received = self._clock()  # one fetch, one receive time
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
            out.append(make_record(self.tag, host, line, meta, received))
        position = _newest([r[ti] for r in rows], self._position)
        return out, position, len(rows) >= self.max_rows

    def _candidates(self) -> list[Any]:
        if self.kind == "sqlite":  # SQLite compares any type with an integer
            return [_INT_MIN]
        return [_INT_MIN, "", dt.datetime(1, 1, 1)]

    def _current_max(self, conn: Any) -> Any:
        """``start_at: end``: the largest tracking value the query returns now (runs it once,
        discarding the rows); ``UNSET`` when it returns none (then the start is the start)."""
        first_error: Exception | None = None
        for value in self._candidates():
            try:
                cur, _names, ti = self._execute(conn, value)
            except LookupError:
                raise
            except Exception as exc:
                first_error = first_error or exc
                continue
            best: Any = UNSET
            try:
                while rows := cur.fetchmany(self.max_rows):
                    best = _newest([r[ti] for r in rows], best)
            finally:
                cur.close()
            return best
        assert first_error is not None
        raise first_error

    # -- positions -------------------------------------------------------------------------
    def checkpoint(self) -> object:
        """The position after the last poll whose rows were all emitted."""
        return self._position

    async def commit(self, token: object) -> None:
        if token is UNSET:
            return
        await asyncio.get_running_loop().run_in_executor(None, self._state.write, token)
