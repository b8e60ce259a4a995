"""``logfactory store`` with ``engine: opensearch``, a real process over a real local bus and a
real node: records become searchable; the node stopped, the store pauses and says why (with the
cluster's address), keeps its place on the bus, and resumes by itself when the node is back,
with nothing lost and nothing twice.

Uses the session's single node and stops it: the test leaves it running again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers.nodes import stop_process
from tests.helpers.store_feed import (
    bus_of,
    feed,
    recent_docs,
    store_config,
    store_counters,
    store_problems,
)
from tests.helpers.store_oracle import expected_ids
from tests.helpers.waiting import wait_for
from tests.opensearch_node import OpenSearchCluster

from logfactory.config import Config
from logfactory.store.open import open_reader
from logfactory.store.query.tree import MatchAll, Query, Word
from logfactory.topics import PARSED

pytestmark = pytest.mark.integration

FIRST, SECOND = 600, 400


@pytest.fixture
def node(opensearch_single: OpenSearchCluster) -> Iterator[OpenSearchCluster]:
    yield opensearch_single
    if not opensearch_single.is_running(0):
        opensearch_single.start(0)


@pytest.fixture
def store_proc() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


def _committed(config: Config) -> int:
    bus = bus_of(config)
    try:
        return sum(bus.committed(config.store.group, PARSED).values())
    finally:
        bus.close()


def _feed(config: Config, n: int, seed: int) -> list[str]:
    bus = bus_of(config)
    try:
        return feed(bus, recent_docs(n, seed=seed)).ids
    finally:
        bus.close()


def test_the_store_role_writes_pauses_while_the_node_is_down_and_resumes(
    tmp_path: Path,
    node: OpenSearchCluster,
    opensearch_prefix: str,
    store_proc: list[subprocess.Popen[bytes]],
) -> None:
    opensearch = {"hosts": [node.url], "index_prefix": opensearch_prefix, "bulk_retries": 1}
    config = store_config(tmp_path, engine="opensearch", opensearch=opensearch)
    first = _feed(config, FIRST, seed=1)
    log = tmp_path / "store.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "logfactory", "store", "-c", config.path],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    store_proc.append(proc)
    wait_for(lambda: store_counters(config).get("stored", 0) >= FIRST, 90, "the first records")
    wait_for(lambda: _committed(config) > 0, 30, "the first offsets")
    before = _committed(config)  # logs.parsed's share (the rest are events)

    node.stop(0)
    second = _feed(config, SECOND, seed=2)
    wait_for(lambda: store_problems(config), 90, "the store to report the node down")
    (text,) = store_problems(config)
    assert node.url in text, text
    assert _committed(config) == before  # the bus keeps what the engine could not take
    assert proc.poll() is None, log.read_text()

    node.start(0)
    wait_for(
        lambda: store_counters(config).get("stored", 0) >= FIRST + SECOND, 120, "the resumption"
    )
    assert _committed(config) > before
    wait_for(lambda: not store_problems(config), 60, "the problem to clear")
    stop_process(proc, signal.SIGTERM)
    assert proc.returncode == 0, log.read_text()

    reader = open_reader(config)
    try:
        everything = Query(MatchAll())
        held = [d.id for d in reader.scan(everything, cap=10_000, timeout_s=60)]
        assert sorted(held) == sorted(first + second)  # each once
        docs = list(reader.scan(everything, cap=10_000, timeout_s=60))
        query = Query(Word("password"))
        assert [d.id for d in reader.search(query, 1000).hits] == expected_ids(query, docs)
    finally:
        reader.close()
