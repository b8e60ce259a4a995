"""A checkpoint must not wait behind a bus that does not say where ``logs.raw`` ends.

Why (issue 22, crash matrix): on Kafka that query waits up to 30 s for brokers that went
away, and the checkpoint's flush, which is what notices an outage and switches to the disk
spool, came only after it: a collector tailing a file kept 35 s of traffic in memory with no
position committed and health silent. Now the query is bounded (``MARKS_TIMEOUT_S``), the
checkpoint commits without marks (a crash may then re-send that window: at least once), and a
query still running is not started again at every checkpoint.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers.agent import AgentRunner, Reader, config_for, numbered, write
from tests.helpers.waiting import wait_for

from logfactory.bus.local import LocalBus
from logfactory.collect import agent as agent_module
from logfactory.collect.sources.file import FileSource
from logfactory.record import Record


class HangingRawLog:
    """Answers nothing until released, like ListOffsets against a stopped broker."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def marks(self) -> dict[int, int]:
        self.calls += 1
        assert self.release.wait(60), "never released"
        return {}

    def since(self, marks: dict[int, int]) -> Iterator[Record]:
        return iter(())


def _positions(tmp_path: Path) -> dict[str, object]:
    path = tmp_path / "data" / "collect" / "app.positions.json"
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return {}


def test_a_hanging_bus_query_does_not_hold_the_checkpoint(
    tmp_path: Path, logs: Path, bus: LocalBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agent_module, "MARKS_TIMEOUT_S", 0.2)
    raw_log = HangingRawLog()
    thread = AgentRunner(config_for(tmp_path, logs), bus)
    thread.agent.raw_log = raw_log
    for src in thread.agent.sources:
        assert isinstance(src, FileSource)
        src.raw_log = raw_log
    app = logs / "app.log"
    write(app, numbered("a", 0, 100))
    thread.start()
    try:
        Reader(bus).wait_count(100)

        def committed() -> bool:
            files = _positions(tmp_path).get("files")
            return isinstance(files, list) and files[0]["offset"] == app.stat().st_size

        # the marks never come, yet the positions are committed (without marks)
        wait_for(committed, 30, "a checkpoint while the bus query hangs")
        assert "bus_marks" not in _positions(tmp_path)
        assert raw_log.calls == 1  # one query in flight, not one more per checkpoint
    finally:
        raw_log.release.set()
        thread.stop()
    assert thread.error is None, thread.error
