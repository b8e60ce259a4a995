"""After a crash between a flush and the positions' commit, the file source resumes after the
lines the bus already holds (file_reconcile), instead of sending them again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.helpers.agent import AgentRunner, Reader, config_for, numbered, write
from tests.helpers.waiting import wait_for

from logfactory.bus.local import LocalBus
from logfactory.collect.sources.file import FileSource
from logfactory.collect.sources.file_reconcile import BusRawLog, furthest
from logfactory.record import make_record


def _agent(tmp_path: Path, logs: Path, bus: LocalBus, *, reconcile: bool) -> AgentRunner:
    thread = AgentRunner(config_for(tmp_path, logs), bus)
    if reconcile:
        thread.agent.raw_log = raw_log = BusRawLog(bus)
        for src in thread.agent.sources:
            assert isinstance(src, FileSource)
            src.raw_log = raw_log
    return thread


def _committed_offset(tmp_path: Path) -> int:
    path = tmp_path / "data" / "collect" / "app.positions.json"
    if not path.exists():
        return -1
    return int(json.loads(path.read_text())["files"][0]["offset"])


def _crash_after_flush(tmp_path: Path, logs: Path, bus: LocalBus, reconcile: bool) -> None:
    """100 lines committed, then 50 flushed to the bus whose positions are never written."""
    app = logs / "app.log"
    write(app, numbered("a", 0, 100))
    first = _agent(tmp_path, logs, bus, reconcile=reconcile).start()
    reader = Reader(bus)
    reader.wait_count(100)
    wait_for(lambda: _committed_offset(tmp_path) == app.stat().st_size, 10, "a commit")
    for src in first.agent.sources:
        assert isinstance(src, FileSource)

        async def lost(token: object) -> None:  # the process dies before positions are written
            return None

        src.commit = lost  # type: ignore[method-assign]
    write(app, numbered("a", 100, 150))
    reader.wait_count(150)
    first.stop()  # flushes the bus; the positions file still says 100 lines
    assert _committed_offset(tmp_path) < app.stat().st_size


@pytest.mark.parametrize("reconcile", [True, False])
def test_a_restart_after_a_lost_commit(
    tmp_path: Path, logs: Path, bus: LocalBus, reconcile: bool
) -> None:
    _crash_after_flush(tmp_path, logs, bus, reconcile)
    second = _agent(tmp_path, logs, bus, reconcile=reconcile).start()
    write(logs / "app.log", numbered("a", 150, 160))
    reader = Reader(bus)
    if reconcile:
        lines = reader.wait_count(160)
        second.stop()
        assert [r.line for r in reader.poll()] == [f"a line {i}" for i in range(160)]
        assert len(lines) == 160  # none twice
    else:  # what an edge that cannot read its bus back gets: the 50 lines again, never fewer
        reader.wait_count(210)
        second.stop()
        assert sorted({r.line for r in reader.poll()}) == sorted(f"a line {i}" for i in range(160))


def test_furthest_takes_this_sources_lines_only() -> None:
    ours = make_record("app", "h1", "héllo", {"path": "/l/a.log", "offset": 10})
    raw = make_record("app", "h1", b"\xff\xfe", {"path": "/l/a.log", "offset": 20})
    other_host = make_record("app", "h2", "x" * 50, {"path": "/l/a.log", "offset": 30})
    other_tag = make_record("sys", "h1", "y" * 50, {"path": "/l/a.log", "offset": 30})
    no_meta = make_record("app", "h1", "z")
    ends = furthest([ours, raw, other_host, other_tag, no_meta], "app", "h1")
    assert ends == {"/l/a.log": 22}  # 20 + two raw bytes; the UTF-8 line ended at 10 + 6
    assert furthest([ours], "app", "h1") == {"/l/a.log": 16}
