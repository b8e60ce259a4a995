"""Readers against a real node: `--wait` waits for a node to start (creating nothing), a reader
of a running node follows it, and once the node stops a reader says so instead of waiting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.nodes import demo_config

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def _logfactory(*args: str) -> list[str]:
    return [sys.executable, "-m", "logfactory", *args]


def test_readers_wait_for_a_node_only_when_told(tmp_path: Path, start_node: Any) -> None:
    config, _syslog, _http = demo_config(tmp_path)
    bus = tmp_path / "data" / "bus"
    reader = subprocess.Popen(
        _logfactory("tail", "logs.raw", "--wait", "--count", "2", "-c", str(config)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    try:
        assert reader.stderr is not None
        note = reader.stderr.readline()  # said before it starts waiting
        assert b"no node is running with" in note
        assert b"waiting for one (--wait)" in note
        assert not bus.exists()  # it waits for the node's bus, never makes one
        node = start_node(config)
        out, err = reader.communicate(timeout=90)
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.communicate()
    assert reader.returncode == 0, err
    assert len(out.splitlines()) == 2  # --count ends it

    # the node runs: the last N of what it wrote, and the reader exits after N
    latest = subprocess.run(
        _logfactory("tail", "logs.raw", "--from", "latest", "--count", "3", "-c", str(config)),
        capture_output=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert latest.returncode == 0, latest.stderr
    assert len(latest.stdout.splitlines()) == 3

    assert node.stop() == 0
    stopped = subprocess.run(
        _logfactory("subscribe", "--types", "ALERT", "-c", str(config)),
        capture_output=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert stopped.returncode == 1
    assert f"no node is running on {bus}".encode() in stopped.stderr
    assert b"or pass --wait to wait for one" in stopped.stderr
