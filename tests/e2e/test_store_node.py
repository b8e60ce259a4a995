"""``logfactory run`` runs the log store as a supervised child: the demo's records become
searchable, health expects the store, a store that dies is restarted, and one whose node was
killed ends with it."""

from __future__ import annotations

import os
import re
import signal
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
