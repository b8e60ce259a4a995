"""The issue's test: SIGKILL ``logfactory store`` at random moments while it ingests, start it
again, and in the end every record is stored exactly once — nothing lost, nothing twice.

The moments are random but reached, not slept to: each round waits until the store has read a
random share of what is waiting (its stats file says so), then kills it, whatever it is doing
(between polls, in the engine's commit, between the engine's commit and the bus's)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers.nodes import stop_process
from tests.helpers.store_feed import bus_of, feed, recent_docs, store_config, store_counters
from tests.helpers.waiting import wait_for

from logfactory.api.metrics import NodeCollector, merge_snapshots
from logfactory.config import Config
from logfactory.lifeline import pid_file
from logfactory.stats import read_all_stats
from logfactory.store.open import open_reader
from logfactory.store.query.tree import MatchAll, Query
from logfactory.topics import PARSED

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ROUNDS = 5
PER_ROUND = 6000


def _start(config: Config, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "logfactory", "store", "-c", config.path],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


def _caught_up(config: Config) -> bool:
    bus = bus_of(config)
    try:
        for topic in (PARSED, "events.ALERT"):
            committed = bus.committed(config.store.group, topic)
            for p, (_lo, hi) in bus.watermarks(topic).items():
                if committed.get(p, 0) < hi:
                    return False
        return True
    finally:
        bus.close()


def _docs_metric(config: Config) -> float | None:
    view = merge_snapshots(read_all_stats(config.data_dir / "stats"))
    for metric in NodeCollector(lambda: view, lambda: None, 0.0).collect():
        if metric.name == "logfactory_store_docs":
            return float(metric.samples[0].value)
    return None


def test_sigkill_at_random_moments_loses_nothing_and_stores_nothing_twice(
    tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    config = store_config(tmp_path, batch_size=200, commit_docs=1000)
    docs = recent_docs(ROUNDS * PER_ROUND)
    rng = random.Random(16)
    log = tmp_path / "store.log"
    bus = bus_of(config)
    read_before = 0
    try:
        for round_ in range(ROUNDS):
            feed(bus, docs[round_ * PER_ROUND : (round_ + 1) * PER_ROUND])
            proc = _start(config, log)
            procs.append(proc)
            target = read_before + int(PER_ROUND * rng.uniform(0.1, 0.9))

            def read_enough(target: int = target, proc: subprocess.Popen[bytes] = proc) -> bool:
                assert proc.poll() is None, log.read_text()
                return store_counters(config).get("received", 0) >= target

            wait_for(read_enough, 120, f"round {round_}: the store to read {target} records")
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
            read_before = store_counters(config).get("received", 0)
    finally:
        bus.close()
    # a last run, stopped cleanly once it has caught up
    proc = _start(config, log)
    procs.append(proc)
    wait_for(lambda: _caught_up(config), 180, "the last store run to catch up")
    # /metrics counts what the live store holds, not the killed runs' last reports as well
    wait_for(lambda: _docs_metric(config) == len(docs), 60, "the live store's docs gauge")
    stop_process(proc, signal.SIGTERM)
    assert proc.returncode == 0, log.read_text()
    assert not pid_file(config.data_dir, "store").exists()

    reader = open_reader(config)
    try:
        held = [d.id for d in reader.scan(Query(MatchAll()), cap=len(docs) * 2, timeout_s=120)]
        assert reader.count(Query(MatchAll())) == len(docs)
    finally:
        reader.close()
    assert len(held) == len(docs), "a record is missing or stored twice"
    assert sorted(held) == sorted(d.id for d in docs)
    counters = store_counters(config)
    # replays happened (reads past the last commit of a killed run) and were recognised
    assert counters["received"] >= len(docs)
    assert counters["stored"] <= len(docs)  # a killed run's last stored count may be unwritten


def _committed_total(config: Config) -> int:
    bus = bus_of(config)
    try:
        return sum(
            sum(bus.committed(config.store.group, topic).values())
            for topic in (PARSED, "events.ALERT")
        )
    finally:
        bus.close()


def test_sigterm_mid_ingest_commits_the_batch_in_hand_and_exits(
    tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    """A clean stop: the engine holds exactly what the bus offsets say was read, no more (as a
    kill may leave) and no less."""
    config = store_config(tmp_path, batch_size=200, commit_docs=1000)
    docs = recent_docs(3 * PER_ROUND)
    bus = bus_of(config)
    try:
        feed(bus, docs)
    finally:
        bus.close()
    log = tmp_path / "store.log"
    proc = _start(config, log)
    procs.append(proc)
    wait_for(
        lambda: store_counters(config).get("received", 0) >= PER_ROUND, 120, "ingest under way"
    )
    stop_process(proc, signal.SIGTERM)
    assert proc.returncode == 0, log.read_text()
    assert "store stopping: committing the batch in hand" in log.read_text()
    reader = open_reader(config)
    try:
        held = reader.count(Query(MatchAll()))
    finally:
        reader.close()
    assert held == _committed_total(config)
    assert held == store_counters(config)["stored"]
    assert 0 < held <= len(docs)
