"""The file source end to end: real files in a temp dir, the Agent, the real local bus."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from pathlib import Path

import pytest
from tests.helpers.agent import AgentRunner, Reader, config_for, numbered, start, write
from tests.helpers.configs import source_of
from tests.helpers.waiting import wait_for

from logfactory.bus.base import BusError
from logfactory.bus.local import LocalBus
from logfactory.collect.agent import Agent
from logfactory.collect.sources.context import SourceContext
from logfactory.collect.sources.file import FileSource
from logfactory.config import FileSourceConfig
from logfactory.stats import StatsRegistry


def test_lines_arrive_once_in_order_with_meta(
    tmp_path: Path, logs: Path, bus: LocalBus, runners: list[AgentRunner]
) -> None:
    a, b = logs / "a.log", logs / "b.log"
    write(a, numbered("a", 0, 100))
    write(b, "b first\r\nb second\nb unterminated")
    write(logs / "ignored.txt", "not matched\n")
    agent = start(runners, config_for(tmp_path, logs, tag="app"), bus)
    reader = Reader(bus)
    reader.wait_count(102)
    assert reader.lines(a) == [f"a line {i}" for i in range(100)]
    assert reader.lines(b) == ["b first", "b second"]  # CR stripped, tail held back
    write(b, " now complete\n")
    write(a, numbered("a", 100, 150))
    reader.wait_count(153)
    assert reader.lines(b)[-1] == "b unterminated now complete"
    assert reader.lines(a) == [f"a line {i}" for i in range(150)]
    rec = next(r for r in reader.records if r.line == "a line 1")
    assert rec.meta == {"path": str(a), "offset": len("a line 0\n")}
    assert rec.source == "app"
    assert rec.host == socket.gethostname()
    last_b = [r for r in reader.records if r.meta["path"] == str(b)][-1]
    assert last_b.meta["offset"] == len(b"b first\r\nb second\n")
    agent.stop()
    counters = agent.registry.snapshot()["counters"]["source:app"]
    assert counters["received"] == 153
    assert counters["bytes"] > 153 * 20
    assert len(reader.poll()) == 153


def test_new_files_are_picked_up(
    tmp_path: Path, logs: Path, bus: LocalBus, runners: list[AgentRunner]
) -> None:
    start(runners, config_for(tmp_path, logs), bus)
    reader = Reader(bus)
    for n in range(3):
        write(logs / f"new{n}.log", numbered(f"n{n}", 0, 20))
    reader.wait_count(60)
    for n in range(3):
        assert reader.lines(logs / f"new{n}.log") == [f"n{n} line {i}" for i in range(20)]


def test_restart_resumes_without_resend_or_skip(
    tmp_path: Path, logs: Path, bus: LocalBus, runners: list[AgentRunner]
) -> None:
    app = logs / "app.log"
    write(app, numbered("x", 0, 1000) + "partial")
    config = config_for(tmp_path, logs)
    agent = start(runners, config, bus)
    reader = Reader(bus)
    reader.wait_count(1000)
    agent.stop()
    positions = json.loads((tmp_path / "data/collect/app.positions.json").read_text())
    (entry,) = positions["files"]
    assert entry["offset"] == len(numbered("x", 0, 1000))
    assert entry["path"] == str(app)
    assert entry["ino"] == app.stat().st_ino
    write(app, " done\n" + numbered("x", 1000, 1500))  # while the agent is down
    start(runners, config, bus)
    reader.wait_count(1501)
    assert reader.lines(app) == [f"x line {i}" for i in range(1000)] + ["partial done"] + [
        f"x line {i}" for i in range(1000, 1500)
    ]


def test_stop_in_the_middle_then_resume_exactly_once(
    tmp_path: Path, logs: Path, bus: LocalBus, runners: list[AgentRunner]
) -> None:
    app = logs / "app.log"
    total = 60_000
    write(app, numbered("m", 0, total))
    config = config_for(tmp_path, logs)
    agent = start(runners, config, bus)
    reader = Reader(bus)
    wait_for(lambda: len(reader.poll()) > 0, 10, "the first records")
    agent.stop()
    first = len(reader.poll())
    start(runners, config, bus)
    reader.wait_count(total, timeout=30)
    assert reader.lines(app) == [f"m line {i}" for i in range(total)]
    assert 0 < first <= total


def test_rotation_by_rename_reads_old_to_end_then_new(
    tmp_path: Path, logs: Path, bus: LocalBus, runners: list[AgentRunner]
) -> None:
    app = logs / "app.log"
    writer = open(app, "ab", buffering=0)  # noqa: SIM115 - the "application" keeps its handle
    try:
        writer.write(numbered("old", 0, 50).encode())
        start(runners, config_for(tmp_path, logs), bus)
        reader = Reader(bus)
        reader.wait_count(50)
        os.rename(app, logs / "app.log.1")  # no longer matches *.log
        writer.write(numbered("old", 50, 80).encode() + b"old tail")  # written after the rename
        write(app, numbered("new", 0, 40))
        reader.wait_count(50 + 30 + 40 + 1)
    finally:
        writer.close()
    old = [r.line for r in reader.records if r.line.startswith("old")]
    new = [r.line for r in reader.records if r.line.startswith("new")]
    assert old == [f"old line {i}" for i in range(80)] + ["old tail"]
    assert new == [f"new line {i}" for i in range(40)]
    assert len(reader.poll()) == 121


def test_truncation_starts_over(
    tmp_path: Path, logs: Path, bus: LocalBus, runners: list[AgentRunner]
) -> None:
    app = logs / "app.log"
    write(app, numbered("before", 0, 30))
    start(runners, config_for(tmp_path, logs), bus)
    reader = Reader(bus)
    reader.wait_count(30)
    write(app, "after 0\nafter 1\n", mode="wb")  # copytruncate-style: same inode, size 0
    reader.wait_count(32)
    assert reader.lines(app)[-2:] == ["after 0", "after 1"]
    assert [r.meta["offset"] for r in reader.records[-2:]] == [0, 8]


def test_start_at_end_skips_existing_content(
    tmp_path: Path, logs: Path, bus: LocalBus, runners: list[AgentRunner]
) -> None:
    app = logs / "app.log"
    write(app, numbered("history", 0, 10))
    start(runners, config_for(tmp_path, logs, start_at="end"), bus)
    reader = Reader(bus)
    write(app, "fresh\n")
    write(logs / "later.log", "from a new file\n")  # a file that appears later: from its start
    reader.wait_count(2)
    assert sorted(reader.lines()) == ["fresh", "from a new file"]


def test_inode_with_different_content_is_read_from_start(
    tmp_path: Path, logs: Path, bus: LocalBus, runners: list[AgentRunner]
) -> None:
    app = logs / "app.log"
    write(app, numbered("one", 0, 10))
    config = config_for(tmp_path, logs)
    agent = start(runners, config, bus)
    reader = Reader(bus)
    reader.wait_count(10)
    agent.stop()
    # same inode, other content and longer: what a recycled inode looks like to us
    with open(app, "r+b") as f:
        f.write(numbered("two", 0, 20).encode())
    start(runners, config, bus)
    reader.wait_count(30)
    assert reader.lines(app)[10:] == [f"two line {i}" for i in range(20)]


def test_invalid_utf8_is_kept_raw(
    tmp_path: Path, logs: Path, bus: LocalBus, runners: list[AgentRunner]
) -> None:
    write(logs / "bin.log", b"ok\n\xff\xfe bad bytes\n")
    start(runners, config_for(tmp_path, logs), bus)
    records = Reader(bus).wait_count(2)
    assert records[0].raw is None
    assert records[1].raw == b"\xff\xfe bad bytes"


def test_damaged_positions_file_means_reading_from_start(
    tmp_path: Path, logs: Path, bus: LocalBus, runners: list[AgentRunner]
) -> None:
    (tmp_path / "data/collect").mkdir(parents=True)
    (tmp_path / "data/collect/app.positions.json").write_text("{not json")
    write(logs / "app.log", numbered("d", 0, 5))
    start(runners, config_for(tmp_path, logs, start_at="end"), bus)
    assert Reader(bus).wait_count(5)[0].line == "d line 0"


def test_overlong_lines_go_out_in_flagged_pieces(
    tmp_path: Path, logs: Path, bus: LocalBus, runners: list[AgentRunner]
) -> None:
    app = logs / "app.log"
    write(app, "short\n" + "a" * 250 + "\n" + "b" * 350)  # the b-line has no newline (yet)
    start(runners, config_for(tmp_path, logs, max_frame_bytes=100), bus)
    reader = Reader(bus)
    records = reader.wait_count(1 + 3 + 3)
    assert [(len(r.line), r.meta["offset"], r.meta.get("truncated")) for r in records] == [
        (5, 0, None),
        (100, 6, True),
        (100, 106, True),
        (50, 206, True),
        (100, 257, True),
        (100, 357, True),
        (100, 457, True),
    ]
    write(app, "b-end\n")
    assert reader.wait_count(8)[-1].line == "b" * 50 + "b-end"
    assert len(reader.poll()) == 8


class UnflushableProducer:
    """Accepts messages but can never make them durable."""

    def __init__(self) -> None:
        self.produced = 0

    def produce(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        self.produced += 1

    def flush(self, timeout: float | None = None) -> None:
        raise BusError("disk on fire")

    def close(self) -> None:
        return None


def test_positions_are_not_persisted_for_data_the_bus_did_not_confirm(
    tmp_path: Path, logs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(logs / "app.log", numbered("u", 0, 10))
    producer = UnflushableProducer()
    agent = Agent(
        config_for(tmp_path, logs), producer, StatsRegistry("t"), checkpoint_interval=0.05
    )

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        deadline = time.monotonic() + 30
        while producer.produced < 10 or "checkpoint failed" not in caplog.text:
            assert time.monotonic() < deadline, f"produced {producer.produced}, no failure"
            await asyncio.sleep(0.01)
        stop.set()
        with pytest.raises(BusError, match="disk on fire"):
            await asyncio.wait_for(task, 10)

    asyncio.run(main())
    assert not (tmp_path / "data/collect/app.positions.json").exists()
    assert agent.registry.snapshot()["counters"]["agent"]["errors"] >= 1


def test_lag_counts_the_bytes_written_but_not_yet_emitted(
    tmp_path: Path, logs: Path, bus: LocalBus, runners: list[AgentRunner]
) -> None:
    write(logs / "a.log", numbered("a", 0, 100))
    write(logs / "b.log", "unterminated tail")
    config = config_for(tmp_path, logs)
    src = FileSource(
        source_of(config, FileSourceConfig), SourceContext(tmp_path / "data", name="app")
    )
    src._load_positions()
    src._rescan()
    sizes = sum(p.stat().st_size for p in logs.iterdir())
    assert src.lag() == (sizes, "bytes")  # nothing read yet

    agent = start(runners, config, bus)
    Reader(bus).wait_count(100)

    def gauge() -> float:
        return float(agent.registry.snapshot()["gauges"].get("source:app:lag_bytes", -1))

    # the unterminated line stays behind until its idle timeout (5 s by default)
    wait_for(lambda: gauge() == len("unterminated tail"), 5.0, "lag down to the open line")
