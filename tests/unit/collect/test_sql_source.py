"""The SQL source with the stdlib sqlite3 (``sqlite:///`` URLs), the Agent and the real local bus.

The agent and the reader of logs.raw are tests/helpers/agent.py's, shared with the ODBC peer test
and the Kafka input test.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.agent import AgentRunner, Reader, ids, start
from tests.helpers.configs import source_as, source_of
from tests.helpers.sources import EmitTo
from tests.helpers.waiting import wait_for

from logfactory.bus.local import LocalBus
from logfactory.collect.sources.context import SourceContext
from logfactory.collect.sources.sql import (
    SqlSource,
    decode_value,
    encode_value,
    parse_connection,
    prepare_query,
)
from logfactory.config import (
    Config,
    ConfigError,
    NodeConfig,
    SqlSourceConfig,
    parse_config,
    source_config,
)
from logfactory.config.checks import check_config
from logfactory.record import Record

QUERY = "SELECT id, ts, host, msg FROM events WHERE id > ? ORDER BY id"


# -- harness -------------------------------------------------------------------------------
def make_events_db(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, ts TEXT, host TEXT, msg TEXT)")


def insert(path: Path, start: int, stop: int) -> None:
    """Rows ``start .. stop-1``: id = i, one second apart from 2026-01-01."""
    rows = [
        (i, f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z", f"h{i % 3}", f"message {i}")
        for i in range(start, stop)
    ]
    with sqlite3.connect(path) as db:
        db.executemany("INSERT INTO events (id, ts, host, msg) VALUES (?, ?, ?, ?)", rows)


# -- fixtures ------------------------------------------------------------------------------
@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "site.db"
    make_events_db(path)
    return path


def sql_config(tmp_path: Path, db: Path, **kw: Any) -> Config:
    settings: dict[str, Any] = {
        "connection": f"sqlite:///{db}", "query": QUERY, "tracking_column": "id",
        "interval": "50ms", **kw,
    }  # fmt: skip
    source = source_config(type="sql", name="events", **settings)
    return Config(node=NodeConfig(data_dir=str(tmp_path / "data")), sources=[source])


def saved_position(tmp_path: Path) -> Any:
    doc = json.loads((tmp_path / "data" / "collect" / "events.sql.json").read_text())
    return decode_value(doc["last"])


# -- every row once ------------------------------------------------------------------------
def test_rows_once_each_across_clean_restarts(
    tmp_path: Path, db: Path, bus: LocalBus, runners: list[AgentRunner]
) -> None:
    insert(db, 1, 6)
    config = sql_config(tmp_path, db)
    reader = Reader(bus)
    first = start(runners, config, bus)
    reader.wait_count(5)
    insert(db, 6, 9)
    reader.wait_count(8)
    first.stop()
    assert saved_position(tmp_path) == 8
    insert(db, 9, 12)  # written while the agent is down
    second = start(runners, config, bus)
    reader.wait_count(11)
    second.stop()
    assert sorted(ids(reader.poll())) == list(range(1, 12))
    rec = reader.records[0]
    assert rec.source == "sql"
    assert rec.host == "site"
    assert json.loads(rec.line) == {
        "id": 1, "ts": "2026-01-01T00:00:01Z", "host": "h1", "msg": "message 1"
    }  # fmt: skip
    assert rec.meta == {"tracking": 1}
    counters = second.registry.snapshot()["counters"]["source:events"]
    assert counters["received"] == 3
    assert "errors" not in counters


def test_crash_before_commit_rereads_only_the_uncommitted_rows(
    tmp_path: Path, db: Path, bus: LocalBus, runners: list[AgentRunner]
) -> None:
    insert(db, 1, 6)
    config = sql_config(tmp_path, db)
    reader = Reader(bus)
    first = start(runners, config, bus)
    reader.wait_count(5)
    first.stop()
    assert saved_position(tmp_path) == 5
    # no checkpoint during this run: everything it emits is uncommitted when it "dies"
    crashing = start(runners, config, bus, checkpoint_interval=3600)
    insert(db, 6, 9)
    wait_for(lambda: crashing.source.checkpoint() == 8, 10, "rows 6..8 emitted")
    crashing.crash()
    assert saved_position(tmp_path) == 5
    third = start(runners, config, bus)
    insert(db, 9, 11)
    wait_for(lambda: 10 in ids(reader.poll()), 10, "row 10")
    third.stop()
    got = ids(reader.poll())
    assert sorted(set(got)) == list(range(1, 11))  # nothing lost
    dupes = {i: got.count(i) for i in set(got) if got.count(i) > 1}
    assert set(dupes) <= {6, 7, 8}, dupes  # only the batch emitted after the last commit
    assert saved_position(tmp_path) == 10
    fourth = start(runners, config, bus)
    insert(db, 11, 12)
    wait_for(lambda: 11 in ids(reader.poll()), 10, "row 11")
    fourth.stop()
    assert ids(reader.poll()).count(11) == 1
    assert ids(reader.records).count(10) == 1


def test_source_position_advances_only_per_fully_emitted_poll(tmp_path: Path, db: Path) -> None:
    """Without the agent: positions are the caller's to commit, and full polls repeat at once."""
    insert(db, 1, 11)
    sc = source_of(sql_config(tmp_path, db, max_rows=3, interval="1h"), SqlSourceConfig)

    async def main() -> tuple[list[Record], list[Any]]:
        src = SqlSource(sc, SourceContext(tmp_path / "data", name="events"))
        got: list[Record] = []
        seen: list[Any] = []
        stop = asyncio.Event()

        async def emit(record: Record) -> None:
            seen.append(src.checkpoint())  # the position while the poll is still being emitted
            got.append(record)
            if len(got) == 10:
                stop.set()

        await asyncio.wait_for(src.run(EmitTo(emit), stop), 10)  # 10 rows in 4 polls despite 1h
        await src.commit(src.checkpoint())
        again = SqlSource(sc, SourceContext(tmp_path / "data", name="events"))
        stop2 = asyncio.Event()
        stop2.set()
        await again.run(EmitTo(emit), stop2)
        assert again.checkpoint() == 10
        return got, seen

    got, seen = asyncio.run(main())
    assert ids(got) == list(range(1, 11))
    assert seen[:4] == [seen[0], seen[0], seen[0], 3]  # rows 1-3 carry the start, then 3
    assert seen[-1] == 9
    assert saved_position(tmp_path) == 10


# -- tracking columns and where to start ---------------------------------------------------
def test_tracking_by_timestamp_with_initial_value(
    tmp_path: Path, db: Path, bus: LocalBus, runners: list[AgentRunner]
) -> None:
    insert(db, 1, 10)
    config = sql_config(
        tmp_path, db, query="SELECT ts, msg, host FROM events WHERE ts > :last ORDER BY ts",
        tracking_column="ts", initial_value="2026-01-01T00:00:04Z", message_column="msg",
        host_column="host",
    )  # fmt: skip
    reader = Reader(bus)
    first = start(runners, config, bus)
    reader.wait_count(5)
    first.stop()
    assert saved_position(tmp_path) == "2026-01-01T00:00:09Z"
    insert(db, 10, 13)
    second = start(runners, config, bus)
    reader.wait_count(8)
    second.stop()
    by_line = {r.line: r for r in reader.poll()}  # hosts differ: partitions interleave
    assert len(reader.records) == 8
    assert sorted(by_line) == sorted(f"message {i}" for i in range(5, 13))
    rec = by_line["message 5"]
    assert rec.host == "h2"
    assert rec.meta["tracking"] == "2026-01-01T00:00:05Z"
    assert rec.meta["row"] == {"ts": "2026-01-01T00:00:05Z", "msg": "message 5", "host": "h2"}


def test_start_at_end_skips_existing_rows(
    tmp_path: Path, db: Path, bus: LocalBus, runners: list[AgentRunner]
) -> None:
    insert(db, 1, 21)
    config = sql_config(tmp_path, db, start_at="end", max_rows=7)
    reader = Reader(bus)
    runner = start(runners, config, bus)
    wait_for(lambda: (tmp_path / "data" / "collect" / "events.sql.json").exists(), 10, "end")
    assert saved_position(tmp_path) == 20  # persisted at once: nothing was in flight
    insert(db, 21, 23)
    reader.wait_count(2)
    runner.stop()
    assert ids(reader.poll()) == [21, 22]


# -- failures ------------------------------------------------------------------------------
def test_errors_are_counted_and_retried_until_the_database_appears(
    tmp_path: Path, bus: LocalBus, runners: list[AgentRunner]
) -> None:
    db = tmp_path / "later.db"
    config = sql_config(tmp_path, db, interval="20ms")
    reader = Reader(bus)
    runner = start(runners, config, bus)  # a missing database does not fail the start
    counters = runner.registry.snapshot
    wait_for(lambda: counters()["counters"].get("source:events", {}).get("errors", 0) >= 2, 10)
    assert "OperationalError" in runner.registry.problems()["source:events"]
    with sqlite3.connect(db) as conn:  # the file, but not yet the table: still an error
        conn.execute("CREATE TABLE other (x)")
    make_events_db(db)
    insert(db, 1, 4)
    reader.wait_count(3, timeout=15)
    wait_for(lambda: not runner.registry.problems(), 5, "problem cleared")
    assert runner.alive()
    runner.stop()
    assert ids(reader.poll()) == [1, 2, 3]


def test_a_query_without_the_tracking_column_is_an_error_not_a_crash(
    tmp_path: Path, db: Path, bus: LocalBus, runners: list[AgentRunner]
) -> None:
    insert(db, 1, 3)
    config = sql_config(tmp_path, db, query="SELECT msg FROM events WHERE id > ?")
    runner = start(runners, config, bus)
    wait_for(lambda: runner.registry.problems(), 10, "a problem")
    assert "tracking_column 'id' is not among the query's columns ['msg']" in str(
        runner.registry.problems()
    )
    assert runner.alive()


# -- configuration -------------------------------------------------------------------------
def test_connection_forms() -> None:
    assert parse_connection("sqlite:///rel/x.db") == ("sqlite", "rel/x.db", "x")
    assert parse_connection("sqlite:////abs/y.db") == ("sqlite", "/abs/y.db", "y")
    odbc = "DRIVER={SQLite3};Database=/var/db/events.sqlite"
    assert parse_connection(odbc) == ("odbc", odbc, "events")
    assert parse_connection("DSN=eventsdb") == ("odbc", "DSN=eventsdb", "eventsdb")
    with pytest.raises(ValueError, match=r"'postgresql'.*sqlite:///PATH.db.*ODBC"):
        parse_connection("postgresql://u@h/db")
    with pytest.raises(ValueError, match="neither a DB-API URL"):
        parse_connection("events.db")


def test_query_placeholders() -> None:
    assert prepare_query(QUERY) == QUERY
    assert prepare_query("SELECT * FROM t WHERE id > :last") == "SELECT * FROM t WHERE id > ?"
    assert prepare_query("SELECT '?', x FROM t WHERE x > ?") == "SELECT '?', x FROM t WHERE x > ?"
    with pytest.raises(ValueError, match=r"exactly one placeholder.*found 0"):
        prepare_query("SELECT * FROM t")
    with pytest.raises(ValueError, match="found 2"):
        prepare_query("SELECT * FROM t WHERE a > ? AND b > ?")


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    bad = [
        source_config(type="sql", name="a"),
        source_config(type="sql", connection="mysql://h/db", query="SELECT 1", tracking_column="x",
                      max_rows=0),
    ]  # fmt: skip
    problems = check_config(Config(sources=bad))
    where = {path: text for path, text in problems}
    assert where[("sources", 0, "connection")] == "a sql source needs 'connection'"
    assert ("sources", 0, "query") in where
    assert ("sources", 0, "tracking_column") in where
    assert "unsupported connection URL scheme 'mysql'" in where[("sources", 1, "connection")]
    assert "exactly one placeholder" in where[("sources", 1, "query")]
    assert where[("sources", 1, "max_rows")] == "max_rows must be at least 1"
    with pytest.raises(ConfigError, match=r"sources\[0\]\.interval: 'soon' is not a duration"):
        parse_config("sources:\n  - {type: sql, interval: soon}\n")  # refused as it loads
    with pytest.raises(ValueError, match="needs 'connection', 'query' and 'tracking_column'"):
        SqlSource(source_of(Config(sources=bad), SqlSourceConfig), SourceContext(tmp_path))
    good = sql_config(tmp_path, tmp_path / "x.db")
    assert check_config(good) == []


# -- values --------------------------------------------------------------------------------
VALUES: list[Any] = [
    7, 2.5, "x", None, True, Decimal("12.50"), b"\x00\xff",
    dt.datetime(2026, 1, 2, 3, 4, 5, 678000), dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
    dt.date(2026, 1, 2), dt.time(1, 2, 3),
]  # fmt: skip


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_tracked_values_round_trip_through_json(value: Any) -> None:
    doc = json.loads(json.dumps(encode_value(value)))
    back = decode_value(doc)
    assert back == value
    assert type(back) is type(value)


class _Cursor:
    description = [("id",), ("at",), ("amount",), ("blob",), ("host",)]

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows = rows
        self.params: Any = None

    def execute(self, query: str, params: Any) -> None:
        self.params = params

    def fetchmany(self, n: int) -> list[tuple[Any, ...]]:
        out, self.rows = self.rows[:n], self.rows[n:]
        return out

    def close(self) -> None:
        pass


class _Conn:
    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.cur = _Cursor(rows)

    def cursor(self) -> _Cursor:
        return self.cur


def test_rows_become_json_safe_lines(tmp_path: Path) -> None:
    when = dt.datetime(2026, 3, 4, 5, 6, 7, 890000)
    rows = [(1, when, Decimal("3.10"), b"\x00\x01\xfe", None), (2, when, None, None, b"n\xff")]
    sc = source_as(SqlSourceConfig, type="sql", connection="DSN=site", query=QUERY,
                   tracking_column="ID", host_column="host", tag="db")  # fmt: skip
    src = SqlSource(sc, SourceContext(tmp_path, hostname="me"))
    conn = _Conn(rows)
    records, position, full = src._fetch(conn, 0)
    assert conn.cur.params == (0,)
    assert position == 2
    assert not full
    doc = json.loads(records[0].line)
    assert doc == {
        "id": 1, "at": "2026-03-04T05:06:07.890000", "amount": "3.10",
        "blob": base64.b64encode(b"\x00\x01\xfe").decode(), "host": None,
    }  # fmt: skip
    assert records[0].host == "site"
    assert records[0].source == "db"
    assert records[1].host == "n\ufffd"  # undecodable host bytes are replaced, not fatal
    assert src._fetch(_Conn([]), 2) == ([], src.checkpoint(), False)


def test_sqlite_url_with_odd_characters_in_the_path(tmp_path: Path) -> None:
    db = tmp_path / "my db #1?.db"
    make_events_db(db)
    insert(db, 1, 3)
    sc = source_of(sql_config(tmp_path, db), SqlSourceConfig)

    async def main() -> list[Record]:
        src = SqlSource(sc, SourceContext(tmp_path / "data", name="events"))
        got: list[Record] = []
        stop = asyncio.Event()

        async def emit(record: Record) -> None:
            got.append(record)
            if len(got) == 2:
                stop.set()

        await asyncio.wait_for(src.run(EmitTo(emit), stop), 10)
        return got

    got = asyncio.run(main())
    assert ids(got) == [1, 2]
    assert {r.host for r in got} == {"my db #1?"}
