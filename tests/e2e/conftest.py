"""Fixtures that start real node processes (tests/helpers/nodes.py) and kill what is left."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers.nodes import NodeProcess, Proc


@pytest.fixture
def start_node(tmp_path: Path) -> Iterator[object]:
    nodes: list[NodeProcess] = []

    def start(
        config: Path,
        *args: str,
        role: str = "run",
        max_open_files: int | None = None,
        umask: int = -1,
    ) -> NodeProcess:
        """``max_open_files``: the node's RLIMIT_NOFILE, soft and hard (it cannot raise it);
        ``umask``: the one it starts under (-1: this process's)."""
        log = tmp_path / f"node-{len(nodes)}.log"

        def limit_files() -> None:
            if max_open_files is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (max_open_files, max_open_files))

        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "logfactory", role, "-c", str(config), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=tmp_path,
                preexec_fn=limit_files if max_open_files is not None else None,
                umask=umask,
            )
        node = NodeProcess(proc, log)
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        node.stop()


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    """Every process a test starts; whatever still runs at the end is killed."""
    started: list[Proc] = []
    yield started
    for p in started:
        if p.proc.poll() is None:
            os.killpg(p.proc.pid, signal.SIGKILL)
            p.proc.wait(30)
