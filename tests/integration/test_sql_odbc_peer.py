"""The SQL source through the real thing: pyodbc -> unixODBC -> SQLite3 ODBC driver (libsqliteodbc).

Rows are written through the same driver, the source polls them, more rows arrive, the agent is
restarted (clean, and once "crashed" before its commit), and every row must be on logs.raw:
exactly once after clean restarts; after the crash only the uncommitted tail may repeat.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyodbc  # type: ignore[import-not-found]  # a C module: its pyodbc.pyi is not PEP 561
import pytest
from tests.helpers.agent import AgentRunner, Reader, ids
from tests.helpers.waiting import wait_for

from logfactory.bus.local import LocalBus
from logfactory.config import Config, NodeConfig, source_config

pytestmark = pytest.mark.integration

DRIVER = "SQLite3"


def odbc(db: Path) -> str:
    return f"DRIVER={{{DRIVER}}};Database={db}"


def create(db: Path) -> None:
    with pyodbc.connect(odbc(db), autocommit=True) as cn:
        cn.execute(
            "CREATE TABLE events (id INTEGER PRIMARY KEY, at DATETIME, host TEXT, msg TEXT, "
            "sev INTEGER, payload BLOB)"
        )


def insert(db: Path, start: int, stop: int) -> None:
    base = dt.datetime(2026, 1, 1)
    rows = [
        (i, base + dt.timedelta(seconds=i), f"node{i % 2}", f"message {i} ünïcode", i % 7,
         bytes([i % 256, 0xFF]))
        for i in range(start, stop)
    ]  # fmt: skip
    with pyodbc.connect(odbc(db), autocommit=False) as cn:
        cn.cursor().executemany(
            "INSERT INTO events (id, at, host, msg, sev, payload) VALUES (?, ?, ?, ?, ?, ?)", rows
        )
        cn.commit()


def config(tmp_path: Path, connection: str, **kw: Any) -> Config:
    settings: dict[str, Any] = {
        "connection": connection, "tracking_column": "id", "interval": "50ms",
        "query": "SELECT id, at, host, msg, sev, payload FROM events WHERE id > ? ORDER BY id",
        **kw,
    }  # fmt: skip
    source = source_config(type="sql", name="events", tag="db", **settings)
    return Config(node=NodeConfig(data_dir=str(tmp_path / "data")), sources=[source])


def test_pyodbc_driver_rows_once_each_across_restarts_and_a_crash(
    tmp_path: Path, bus: LocalBus, runners: list[AgentRunner]
) -> None:
    assert DRIVER in pyodbc.drivers()
    db = tmp_path / "site.sqlite"
    create(db)
    insert(db, 1, 6)
    cfg = config(tmp_path, odbc(db), host_column="host")
    reader = Reader(bus)

    first = AgentRunner(cfg, bus).start()
    runners.append(first)
    reader.wait_count(5)
    insert(db, 6, 9)
    reader.wait_count(8)
    first.stop()
    insert(db, 9, 12)  # while the collector is down
    second = AgentRunner(cfg, bus).start()
    runners.append(second)
    reader.wait_count(11)
    second.stop()
    got = ids(reader.poll())
    assert sorted(got) == list(range(1, 12)), got  # exactly once across clean restarts

    crashing = AgentRunner(cfg, bus, checkpoint_interval=3600).start()
    runners.append(crashing)
    insert(db, 12, 15)
    wait_for(lambda: crashing.source.checkpoint() == 14, 10, "rows 12..14 emitted")
    crashing.crash()
    third = AgentRunner(cfg, bus).start()
    runners.append(third)
    insert(db, 15, 17)
    wait_for(lambda: 16 in ids(reader.poll()), 10, "row 16")
    third.stop()
    got = ids(reader.poll())
    assert sorted(set(got)) == list(range(1, 17))  # nothing lost
    assert {i for i in got if got.count(i) > 1} <= {12, 13, 14}  # only the uncommitted tail

    rec = next(r for r in reader.records if json.loads(r.line)["id"] == 3)
    assert rec.source == "db"
    assert rec.host == "node1"
    assert json.loads(rec.line) == {
        "id": 3, "at": "2026-01-01T00:00:03", "host": "node1", "msg": "message 3 ünïcode",
        "sev": 3, "payload": base64.b64encode(bytes([3, 0xFF])).decode(),
    }  # fmt: skip


def test_dsn_from_odbc_ini_tracking_a_datetime_column(
    tmp_path: Path, bus: LocalBus, runners: list[AgentRunner], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "dsn.sqlite"
    create(db)
    insert(db, 1, 5)
    ini = tmp_path / "odbc.ini"
    ini.write_text(f"[eventsdb]\nDriver={DRIVER}\nDatabase={db}\n")
    monkeypatch.setenv("ODBCINI", str(ini))  # the user's odbc.ini, as unixODBC reads it
    cfg = config(
        tmp_path, "DSN=eventsdb", tracking_column="at", message_column="msg",
        query="SELECT at, msg FROM events WHERE at > :last ORDER BY at",
    )  # fmt: skip
    reader = Reader(bus)
    first = AgentRunner(cfg, bus).start()
    runners.append(first)
    reader.wait_count(4)
    first.stop()
    saved = json.loads((tmp_path / "data" / "collect" / "events.sql.json").read_text())
    assert saved["last"] == {"t": "datetime", "v": "2026-01-01T00:00:04"}
    insert(db, 5, 8)
    second = AgentRunner(cfg, bus).start()
    runners.append(second)
    reader.wait_count(7)
    second.stop()
    lines = sorted(r.line for r in reader.poll())
    assert lines == sorted(f"message {i} ünïcode" for i in range(1, 8))
    assert {r.host for r in reader.records} == {"eventsdb"}  # the DSN names the database
