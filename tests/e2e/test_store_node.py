"""``logfactory run`` runs the log store as a supervised child: the demo's records become
searchable, health expects the store, a store that dies is restarted, and one whose node was
killed ends with it."""

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
from tests.helpers.nodes import demo_config, health, up
from tests.helpers.waiting import wait_for

from logfactory.config import load_config
from logfactory.errors import StoreError
from logfactory.store.open import open_reader
from logfactory.store.query.tree import Query, Term

pytestmark = pytest.mark.e2e

BOUND_S = 90.0  # generous on two loaded cores


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _store_pids(node: Any) -> list[int]:
    """Every store child's pid as the node announced it, in order."""
    return [int(p) for p in re.findall(r"^store +pid (\d+) ", node.output(), re.MULTILINE)]


@pytest.fixture
def reap() -> Iterator[list[int]]:
    pids: list[int] = []
    yield pids
    for pid in pids:
        if _running(pid):
            os.kill(pid, signal.SIGKILL)


def _count(config_path: Path, kind: str) -> int:
    try:
        reader = open_reader(load_config(str(config_path)))
    except StoreError:
        return 0  # not made yet
    try:
        return reader.count(Query(Term("kind", kind)))
    finally:
        reader.close()


def test_run_stores_the_demo_and_supervises_its_store(
    tmp_path: Path, start_node: Any, reap: list[int]
) -> None:
    config_path, _, http_port = demo_config(tmp_path, rate=200)
    node = start_node(config_path)
    up(node, http_port)
    wait_for(lambda: _store_pids(node), BOUND_S, "the node to start its store")
    (first,) = _store_pids(node)
    reap.append(first)
    assert re.search(rf"^store +pid {first} \(engine embedded, .*store\)$", node.output(),
                     re.MULTILINE), node.output()  # fmt: skip

    wait_for(lambda: _count(config_path, "log") > 0, BOUND_S, "parsed records in the store")
    wait_for(lambda: _count(config_path, "event") > 0, BOUND_S, "events in the store")
    wait_for(lambda: health(http_port)[0] == 200, BOUND_S, "a healthy node")
    _, body = health(http_port)
    assert any(p["name"] == f"store-{first}" for p in body["processes"]), body

    os.kill(first, signal.SIGKILL)  # a store that dies is restarted
    wait_for(lambda: len(_store_pids(node)) == 2, BOUND_S, "the node to restart its store")
    second = _store_pids(node)[1]
    reap.append(second)
    assert "store exited with -9; restarting" in node.output()
    before = _count(config_path, "log")
    wait_for(lambda: _count(config_path, "log") > before, BOUND_S, "the new store to store")

    os.kill(node.proc.pid, signal.SIGKILL)  # the node only: the store has its own session
    node.proc.wait()
    wait_for(lambda: not _running(second), BOUND_S, "the orphaned store to end")
    assert "the node that started this store is gone" in node.output()


def test_a_node_start_ends_a_store_left_running(
    tmp_path: Path, start_node: Any, reap: list[int]
) -> None:
    """A store of this data directory that is not the node's child (left by a node killed
    before its lifeline could act, or started by hand) would hold the engine's lock: the node
    ends it (SIGTERM: it commits its batch) and starts its own."""
    config_path, _, http_port = demo_config(tmp_path)
    with (tmp_path / "store-by-hand.log").open("wb") as out:
        by_hand = subprocess.Popen(
            [sys.executable, "-m", "logfactory", "store", "-c", str(config_path)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path,
        )  # fmt: skip
    reap.append(by_hand.pid)
    pid_path = tmp_path / "data" / "store.pid"
    wait_for(pid_path.exists, BOUND_S, "the store started by hand to run")
    node = start_node(config_path)
    up(node, http_port)
    assert by_hand.wait(timeout=BOUND_S) == 0  # a clean stop, not a kill
    wait_for(lambda: _store_pids(node), BOUND_S, "the node to start its own store")
    (own,) = _store_pids(node)
    reap.append(own)
    assert own != by_hand.pid
    assert f"store       ended pid {by_hand.pid}" in node.output()
    wait_for(lambda: _count(config_path, "log") > 0, BOUND_S, "the node's store to store")
