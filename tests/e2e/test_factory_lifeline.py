"""A node's factory child ends when its node is killed, and a node's start ends a stale factory.

Why: the child runs in a session of its own, so a SIGKILL of the node used to leave it running;
after a restart two factories ran, both reported healthy. See ``factory/lifeline.py``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.nodes import demo_config
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.e2e

BOUND_S = 90.0  # generous on two loaded cores; the factory ends within its 30 s grace period


def _running(pid: int) -> bool:
    """A zombie counts as ended: an orphan is reaped by whoever adopted it, maybe never here."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _factory_pid(node: Any) -> int | None:
    """The factory child's pid as the node announces it."""
    found = re.findall(r"^factory +pid (\d+) ", node.output(), re.MULTILINE)
    return int(found[-1]) if found else None


@pytest.fixture
def reap() -> Iterator[list[int]]:
    """Pids to SIGKILL at teardown if still running (the orphans of a failing test)."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if _running(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_killed_nodes_factory_finishes_its_batch_and_ends(
    tmp_path: Path, start_node: Any, reap: list[int]
) -> None:
    config, _, _ = demo_config(tmp_path)
    node = start_node(config)
    wait_for(lambda: _factory_pid(node) is not None, BOUND_S, "the node starts its factory")
    factory = _factory_pid(node)
    assert factory is not None
    reap.append(factory)
    stats = tmp_path / "data" / "stats" / f"factory-{factory}.json"
    wait_for(stats.exists, BOUND_S, "the factory runs (its first stats)")

    os.kill(node.proc.pid, signal.SIGKILL)  # the leader only: the child has its own session
    node.proc.wait()
    wait_for(lambda: not _running(factory), BOUND_S, f"the orphaned factory {factory} ends")
    assert "the node that started this factory is gone" in node.output()  # a clean stop


def test_a_node_start_ends_a_stale_factory_of_its_worker_id_only(
    tmp_path: Path, start_node: Any, reap: list[int]
) -> None:
    config, _, _ = demo_config(tmp_path)
    data = tmp_path / "data"

    def by_hand(worker_id: str) -> subprocess.Popen[bytes]:
        with (tmp_path / f"factory-{worker_id}.log").open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "logfactory", "factory", "-c", str(config),
                 "--worker-id", worker_id],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path,
            )  # fmt: skip
        reap.append(proc.pid)
        stats = data / "stats" / f"factory-{proc.pid}.json"
        wait_for(stats.exists, BOUND_S, f"worker {worker_id} runs (its first stats)")
        return proc

    stale, extra = by_hand("0"), by_hand("1")
    node = start_node(config)
    try:
        stale.wait(timeout=BOUND_S)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the node left the stale factory {stale.pid} running") from None
    wait_for(lambda: _factory_pid(node) is not None, BOUND_S, "the node starts its own factory")
    own = _factory_pid(node)
    assert own is not None
    assert own != stale.pid
    reap.append(own)
    assert _running(own)
    assert f"ended pid {stale.pid}" in node.output()
    assert stale.returncode == 0  # SIGTERM: it finished its batch and left the group
    assert extra.poll() is None, "a worker of another id is not stale: it keeps running"
    extra.send_signal(signal.SIGTERM)
    assert extra.wait(timeout=BOUND_S) == 0
