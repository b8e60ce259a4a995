"""A node on a damaged bus: refused in one line that names the file and the way out, then, once
``logfactory bus repair`` has salvaged what was readable, running on the repaired bus with those
messages readable. A fresh data directory still starts as before (and gets its marker)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.helpers.bus_damage import HISTORY, fill, overwrite_second_half
from tests.helpers.nodes import NodeProcess, demo_config, ended, up

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

Start = Callable[..., NodeProcess]


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "logfactory", *args, "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_node_refuses_its_bus_once_the_file_is_truncated(
    tmp_path: Path, start_node: Start
) -> None:
    config, _syslog, http_port = demo_config(tmp_path, rate=50)
    first = start_node(config, "--quiet")  # a fresh data directory starts as it always did
    up(first, http_port)
    assert first.stop() == 0, first.output()
    bus = tmp_path / "data" / "bus"
    assert isinstance(json.loads((bus / "bus.json").read_text())["id"], int)
    os.truncate(bus / "bus.sqlite3", 0)
    status, out = ended(start_node(config, "--quiet"))
    assert status == 1, out
    assert f"Error: {config}: bus (local): {bus / 'bus.sqlite3'} is missing or empty" in out
    assert f"`logfactory bus repair --accept-loss -c {config}`" in out
    assert "Traceback" not in out
    assert (bus / "bus.sqlite3").stat().st_size == 0  # nothing was started over it


def test_a_half_overwritten_bus_is_refused_then_repaired_and_served(
    tmp_path: Path, start_node: Start
) -> None:
    config, _syslog, http_port = demo_config(tmp_path, rate=1)
    bus = tmp_path / "data" / "bus"
    stored = fill(bus)
    overwrite_second_half(bus / "bus.sqlite3")

    status, out = ended(start_node(config, "--quiet"))
    assert status == 1, out
    assert f"Error: {config}: bus (local): {bus / 'bus.sqlite3'} is damaged" in out
    assert f"`logfactory bus repair -c {config}`" in out
    assert "Traceback" not in out

    checked = _cli(config, "bus", "check")
    assert checked.returncode == 1, checked
    assert "DAMAGED" in checked.stdout, checked
    repaired = _cli(config, "bus", "repair")
    assert repaired.returncode == 0, repaired
    salvaged = int(repaired.stdout.split("salvaged ", 1)[1].split(" ", 1)[0].replace(",", ""))
    assert 0 < salvaged < len(stored)

    node = start_node(config, "--quiet")
    up(node, http_port)
    tail = _cli(config, "tail", HISTORY, "--no-follow")
    assert tail.returncode == 0, tail
    lines = [json.loads(line).encode() for line in tail.stdout.splitlines()]
    assert len(lines) == salvaged
    assert set(lines) <= set(stored.values())
    assert node.stop() == 0, node.output()
