"""Fixtures that start real node processes on free ports with a private data directory."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_both() -> int:
    """A port free for both TCP and UDP (the syslog source listens on both)."""
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port")


def demo_config(tmp_path: Path, *, rate: float | None = None) -> tuple[Path, int, int]:
    """examples/demo.yaml with its ports and data directory moved into this test's sandbox."""
    syslog_port, http_port = free_port_both(), free_port()
    text = (ROOT / "examples" / "demo.yaml").read_text()
    text = text.replace("127.0.0.1:5514", f"127.0.0.1:{syslog_port}")
    text = text.replace("127.0.0.1:8080", f"127.0.0.1:{http_port}")
    text = text.replace("var/demo", str(tmp_path / "data"))
    if rate is not None:
        text = text.replace("rate: 50", f"rate: {rate}")
    path = tmp_path / "demo.yaml"
    path.write_text(text)
    return path, syslog_port, http_port


def stop_process(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 60.0
) -> None:
    """Ask ``proc`` to stop with ``sig`` and wait; if it has not exited by ``timeout`` (or the
    wait is cut short, by pytest's own timeout) it is killed and reaped, so no process outlives
    its test. A timeout is still raised: a process that ignores its signal is a failure."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class NodeProcess:
    def __init__(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.proc = proc
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return int(self.proc.returncode)


@pytest.fixture
def start_node(tmp_path: Path) -> Iterator[object]:
    nodes: list[NodeProcess] = []

    def start(
        config: Path, *args: str, role: str = "run", max_open_files: int | None = None
    ) -> NodeProcess:
        """``max_open_files``: the node's RLIMIT_NOFILE, soft and hard (it cannot raise it)."""
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
            )
        node = NodeProcess(proc, log)
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        node.stop()
