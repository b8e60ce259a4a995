"""``logfactory`` nodes as real subprocesses: the demo config in a sandbox, stopping or killing
them so that no process outlives its test, and the credentials their API asks for (every route
but health needs one: the admin token a node makes on its first start, or a token made with it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.helpers.ports import free_port, free_port_both
from tests.helpers.waiting import wait_for

from logfactory.access.bootstrap import ADMIN_FILE, local_token

ROOT = Path(__file__).resolve().parents[2]
EXIT_S = 60.0  # a node that refuses to start exits in about a second; this only bounds a hang


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
    """A node started by the ``start_node`` fixture (tests/e2e/conftest.py), in its own session."""

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


class Proc:
    """A ``logfactory`` subprocess in its own session, its output in a log file."""

    def __init__(self, role: str, config: Path, log: Path) -> None:
        self.log = log
        args = [sys.executable, "-m", "logfactory", role, "-c", str(config)]
        if role == "collect":
            args.append("--quiet")
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> int:
        """A clean stop (SIGINT): everything accepted is flushed."""
        stop_process(self.proc, signal.SIGINT, timeout=60)
        return int(self.proc.returncode)


# -- a node's API --------------------------------------------------------------------------------
def ended(node: NodeProcess) -> tuple[int, str]:
    return node.proc.wait(timeout=EXIT_S), node.output()


def health(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def answers(port: int) -> bool:
    try:
        health(port)
    except OSError:
        return False
    return True


def admin_token(data_dir: Path, timeout: float = 60.0) -> str:
    """The admin API token the node on ``data_dir`` made on its first start, read from
    ``<data_dir>/admin-credentials.json`` as ``logfactory token`` reads it; waits up to
    ``timeout`` for the node to write the file."""
    path = data_dir / ADMIN_FILE
    wait_for(path.exists, timeout, f"the node to write {path}")
    return local_token(data_dir)


def auth_headers(data_dir: Path, timeout: float = 60.0) -> dict[str, str]:
    """``Authorization`` with the admin token of the node on ``data_dir``."""
    return {"Authorization": f"Bearer {admin_token(data_dir, timeout)}"}


def new_token(base: str, data_dir: Path, role: str, name: str = "test") -> str:
    """A new API token of ``role`` made through the API of the node at ``base`` (``POST
    /api/v1/tokens`` with its admin token), the way the docs tell an admin to make an edge
    collector's: the secret, shown only in this answer."""
    body = json.dumps({"name": name, "role": role}).encode()
    headers = {"Content-Type": "application/json", **auth_headers(data_dir)}
    request = urllib.request.Request(f"{base}/api/v1/tokens", body, headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as r:
        assert r.status == 201
        return str(json.loads(r.read())["token"])


def up(node: NodeProcess, port: int) -> None:
    """Wait for the node's API; a node that exited instead fails the test with its output."""
    wait_for(lambda: answers(port) or node.proc.poll() is not None, 60, "the API")
    assert node.proc.poll() is None, node.output()
