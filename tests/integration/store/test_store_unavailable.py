"""An engine that cannot take writes: ``logfactory store`` stops consuming, says why in its
stats (so the node's health and /metrics show it), keeps its place on the bus, and resumes by
itself once the engine is free — nothing lost.

The failure is a real one: a second writer holds the embedded store's lock (as a second store
started by hand on the same data directory would)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.core import Metric
from tests.helpers.nodes import stop_process
from tests.helpers.store_feed import (
    bus_of,
    feed,
    recent_docs,
    store_config,
    store_counters,
    store_problems,
)
from tests.helpers.waiting import wait_for

from logfactory.api.metrics import NodeCollector, merge_snapshots
from logfactory.api.routes.health import process_problems
from logfactory.config import Config
from logfactory.stats import read_all_stats
from logfactory.store.open import open_reader, open_writer
from logfactory.store.query.tree import MatchAll, Query
from logfactory.topics import PARSED

pytestmark = pytest.mark.integration

N = 800


@pytest.fixture
def store_proc(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
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


def _problem_metrics(config: Config) -> list[tuple[str, str]]:
    view = merge_snapshots(read_all_stats(config.data_dir / "stats"))
    metrics: list[Metric] = list(NodeCollector(lambda: view, lambda: None, 0.0).collect())
    (family,) = [m for m in metrics if m.name == "logfactory_process_problem"]
    return [(s.labels["process"], s.labels["problem"]) for s in family.samples if s.value == 1]


def _gauges(config: Config) -> dict[str, float]:
    view = merge_snapshots(read_all_stats(config.data_dir / "stats"))
    metrics = NodeCollector(lambda: view, lambda: None, 0.0).collect()
    return {m.name: m.samples[0].value for m in metrics if m.name.startswith("logfactory_store_")
            and m.type == "gauge"}  # fmt: skip


def test_a_locked_engine_pauses_the_store_which_resumes_by_itself(
    tmp_path: Path, store_proc: list[subprocess.Popen[bytes]]
) -> None:
    config = store_config(tmp_path)
    bus = bus_of(config)
    try:
        feed(bus, recent_docs(N))
    finally:
        bus.close()
    holder = open_writer(config)  # the lock: the store process cannot open its writer
    log = tmp_path / "store.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "logfactory", "store", "-c", config.path],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    store_proc.append(proc)
    try:
        wait_for(lambda: store_problems(config), 60, "the store to report its problem")
        (text,) = store_problems(config)
        assert "the store engine cannot be used" in text, text
        assert "retrying" in text, text
        view = merge_snapshots(read_all_stats(config.data_dir / "stats"))
        health = process_problems(view.processes, own="api", expected=("store",))
        assert any(p.startswith(f"store-{proc.pid}: store paused") for p in health), health
        assert (f"store-{proc.pid}", "store") in _problem_metrics(config)
        assert _committed(config) == 0  # nothing consumed while the engine is away
        assert proc.poll() is None, log.read_text()
    finally:
        holder.close()
    wait_for(lambda: store_counters(config).get("stored", 0) >= N, 60, "the store to resume")
    wait_for(lambda: not store_problems(config), 30, "the problem to clear")
    assert _problem_metrics(config) == []
    # what it holds, and its lag, reach /metrics (refreshed every few seconds)
    wait_for(lambda: _gauges(config).get("logfactory_store_docs") == N, 30, "the docs gauge")
    wait_for(lambda: _gauges(config).get("logfactory_store_lag") == 0, 30, "no lag")
    assert _gauges(config)["logfactory_store_bytes"] > 0
    stop_process(proc, signal.SIGTERM)
    assert proc.returncode == 0, log.read_text()
    assert store_counters(config)["errors"] >= 1
    reader = open_reader(config)
    try:
        assert reader.count(Query(MatchAll())) == N
    finally:
        reader.close()
