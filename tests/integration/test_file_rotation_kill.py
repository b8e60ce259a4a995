"""A real ``logfactory collect`` tailing a file written at full speed, through two rotations by
rename, one copytruncate and a SIGKILL: every line arrives exactly once (the lines emitted after
the last committed position are found on the bus at restart, see file_reconcile).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from tests.helpers.waiting import wait_for
from tests.helpers.writer import WRITER

from logfactory.bus.local import LocalBus
from logfactory.collect.agent import RAW_TOPIC
from logfactory.record import decode_record

pytestmark = pytest.mark.integration

RATE = 50_000

# appends numbered lines, 500 per write(2) (O_APPEND: a write lands whole in one file), until
# SIGTERM; SIGHUP reopens the path, as applications do after a rotation by rename. Each write
# goes out at full speed; the average is held at RATE lines/s so that the test stays short


def start_collector(cfg: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "logfactory", "collect", "-c", str(cfg), "--quiet"],
        start_new_session=True,
    )


class Raw:
    """Line numbers on logs.raw so far (a Counter: duplicates show as counts above 1)."""

    def __init__(self, bus: LocalBus) -> None:
        self.consumer = bus.consumer(None, [RAW_TOPIC], "earliest")
        self.counts: Counter[int] = Counter()

    def poll(self) -> Counter[int]:
        while batch := self.consumer.poll(20_000, 0.05):
            self.counts.update(int(decode_record(m.value).line[:9]) for m in batch)
        return self.counts


def committed_line_numbers(positions: Path) -> list[int]:
    """For each followed file, the number of the first line not yet committed."""
    out = []
    for entry in json.loads(positions.read_text())["files"]:
        with open(entry["path"], "rb") as f:
            f.seek(entry["offset"])
            line = f.readline()
        if len(line) > 9:
            out.append(int(line[:9]))
    return out


def test_rotations_and_sigkill_lose_nothing(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    app = logs / "app.log"
    cfg = tmp_path / "collect.yaml"
    cfg.write_text(
        f"node: {{data_dir: {tmp_path / 'data'}}}\n"
        "http: {enabled: false}\n"
        "sources:\n"
        f"  - {{type: file, name: app, tag: app, paths: ['{logs}/app.log*']}}\n"
    )
    positions = tmp_path / "data/collect/app.positions.json"
    collector = start_collector(cfg)
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(app), str(RATE)],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    bus: LocalBus | None = None
    try:

        def grown(path: Path, size: int) -> bool:
            return path.exists() and path.stat().st_size >= size

        step = 1 << 20  # bytes written between the events: ~35,000 lines
        wait_for(lambda: grown(app, step), 20, "the writer")
        os.rename(app, logs / "app.log.1")  # rotation by rename #1
        writer.send_signal(signal.SIGHUP)
        wait_for(lambda: grown(app, step), 20, "the new file")
        # a checkpoint that knows the rename: reconciling by path covers the lines since then
        # (a rotation inside the crash window is sent again, see file_reconcile; kills inside
        # that window are tests/e2e/test_crash_collectors.py's)
        wait_for(
            lambda: positions.exists() and "app.log.1" in positions.read_text(),
            20,
            "a checkpoint after the rename",
        )
        collector.send_signal(signal.SIGKILL)  # mid-stream
        collector.wait(10)
        committed = committed_line_numbers(positions)
        collector = start_collector(cfg)
        wait_for(lambda: grown(app, 2 * step), 20, "more lines")
        os.rename(logs / "app.log.1", logs / "app.log.2")  # rotation by rename #2
        os.rename(app, logs / "app.log.1")
        writer.send_signal(signal.SIGHUP)
        wait_for(lambda: grown(app, step), 20, "the third file")
        # copytruncate; the writer pauses meanwhile, as lines written between the copy and the
        # truncation would be lost by copytruncate itself, whoever reads the file
        os.killpg(writer.pid, signal.SIGSTOP)
        shutil.copyfile(app, logs / "app.log.3")
        os.truncate(app, 0)
        os.killpg(writer.pid, signal.SIGCONT)
        wait_for(lambda: grown(app, step), 20, "lines after the truncation")
        writer.send_signal(signal.SIGTERM)
        out, _ = writer.communicate(timeout=20)
        total = int(out)
        bus = LocalBus(tmp_path / "data/bus")
        raw = Raw(bus)
        wait_for(lambda: len(raw.poll()) >= total, 45, f"{total} distinct lines")
        collector.send_signal(signal.SIGINT)
        assert collector.wait(20) == 0
        counts = raw.poll()
        raw.consumer.close()
    finally:
        for proc in (collector, writer):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        if bus is not None:
            bus.close()
    assert sorted(counts) == list(range(total)), "lines lost or invented"
    duplicated = sorted(n for n, c in counts.items() if c > 1)
    # the lines emitted after the last committed position were found on the bus at restart
    assert not duplicated, (len(duplicated), duplicated[:5], committed)
    print(f"{total} lines, none twice")
