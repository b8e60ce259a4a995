"""Crash matrix on a real Kafka broker: SIGKILL of the factory with every kind of state live,
and a partition taken over by another worker after a kill.

Why: on Kafka, exactly once rests on transactions (outputs, input offsets and the partition's
``factory.state`` in one), and the docs claim that the worker which takes a partition over
resumes its open multi-line records and composite windows "on real brokers". The only earlier
test of that hand-over used the embedded bus and a clean leave. Here one of two workers dies
by SIGKILL while its partitions hold open traces and partial windows; the survivor must fire
each window's composite event exactly once and emit each trace whole. Outputs are compared
topic by topic with the independent model of ``tests/crash_traffic.py``.

Each test starts a broker of its own: the node's topic names (``logs.raw``, ``events.*``)
are fixed, so a shared broker would mix other tests' records into this factory's input.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient
from tests.helpers.crash_traffic import (
    check,
    config_yaml,
    generate,
    live_state,
    produce,
    read_outputs,
    settle,
)
from tests.helpers.nodes import stop_process
from tests.helpers.waiting import wait_for

from logfactory.bus import open_bus
from logfactory.bus.base import Bus
from logfactory.bus.kafka import KafkaBus
from logfactory.config import load_config
from logfactory.topics import RAW, ensure_topics

# the waits below add up to well under this in the worst case; let them, not pytest, decide
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

LINES = 12_000
NAMES = ("one", "two")


def _config(tmp: Path, bootstrap: str, group: str, name: str) -> Path:
    bus = (
        "bus: {type: kafka, partitions: 4, "
        f'kafka: {{bootstrap.servers: "{bootstrap}", session.timeout.ms: 6000}}}}'
    )
    path = tmp / f"{name}.yaml"
    path.write_text(config_yaml(str(tmp / "data"), bus=bus, group=group, name=name))
    return path


def _worker(config: Path, worker_id: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "logfactory", "factory", "-c", str(config),
             "--worker-id", worker_id],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=config.parent,
        )  # fmt: skip


def _committed(bus: Bus, group: str) -> int:
    return sum(bus.committed(group, RAW).values())


def _finish(bus: Bus, group: str, total: int, logs: list[Path]) -> None:
    waited = settle(bus, group, total)
    tails = "\n".join(log.read_text(errors="replace")[-2000:] for log in logs)
    assert waited is None, f"{waited}\n{tails}"


def test_kafka_factory_sigkill_with_every_kind_of_state_live(
    tmp_path: Path, make_kafka: Any
) -> None:
    bootstrap = make_kafka(1).bootstrap
    group = f"factory-{uuid.uuid4().hex[:8]}"
    path = _config(tmp_path, bootstrap, group, "crash")
    config = load_config(path)
    bus = open_bus(config)
    assert isinstance(bus, KafkaBus)
    ensure_topics(bus, config)
    traffic = generate(LINES, seed=7)
    total = produce(bus, traffic.lines)
    log = tmp_path / "worker.log"
    try:
        for fraction in (0.25, 0.6):
            proc = _worker(path, "1", log)
            before = _committed(bus, group)
            target = total * fraction
            wait_for(lambda: _committed(bus, group) >= target, 180, f"{fraction:.0%} committed")  # noqa: B023
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            at_kill = _committed(bus, group)
            assert before < at_kill < total, "the kill must land mid-stream"
            held, windows = live_state(bus)
            assert held > 0, f"no state in flight at the kill: {held}, {windows}"
            assert windows > 0, f"no state in flight at the kill: {held}, {windows}"
        proc = _worker(path, "1", log)
        try:
            _finish(bus, group, total, [log])
        finally:
            stop_process(proc)
        outputs = read_outputs(bus)
    finally:
        bus.close()
    problems = check(outputs, traffic.expected)
    assert not problems, "\n".join(problems)


def _assignments(bootstrap: str, group: str) -> dict[str, set[int]]:
    """client.id -> the logs.raw partitions it holds, as the group coordinator says."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    out: dict[str, set[int]] = {}
    for member in description.members:
        parts = member.assignment.topic_partitions if member.assignment else []
        out.setdefault(member.client_id, set()).update(
            tp.partition for tp in parts if tp.topic == RAW
        )
    return out


def test_kafka_survivor_resumes_the_killed_workers_windows_and_traces(
    tmp_path: Path, make_kafka: Any
) -> None:
    """Two workers share the partitions; one is killed with traces and windows open in its
    partitions; the survivor takes them over and must finish them exactly once."""
    bootstrap = make_kafka(1).bootstrap
    group = f"factory-{uuid.uuid4().hex[:8]}"
    # two node names: the workers' client ids (and transactional ids) tell them apart
    paths = [_config(tmp_path, bootstrap, group, name) for name in ("one", "two")]
    config = load_config(paths[0])
    bus = open_bus(config)
    assert isinstance(bus, KafkaBus)
    ensure_topics(bus, config)
    traffic = generate(LINES, seed=11)
    logs = [tmp_path / "one.log", tmp_path / "two.log"]
    workers = [_worker(paths[0], "1", logs[0]), _worker(paths[1], "2", logs[1])]
    try:
        # both members hold partitions before any input exists: the kill then takes some
        wait_for(
            lambda: all(
                _assignments(bootstrap, group).get(f"logfactory-{n}") for n in ("one", "two")
            ),
            120,
            "both workers holding partitions",
        )
        victim_parts = _assignments(bootstrap, group)["logfactory-one"]
        total = produce(bus, traffic.lines)
        wait_for(lambda: _committed(bus, group) >= total * 0.35, 180, "35% committed")
        assert _assignments(bootstrap, group)["logfactory-one"] == victim_parts
        os.killpg(workers[0].pid, signal.SIGKILL)
        workers[0].wait()
        committed = bus.committed(group, RAW)
        ends = {p: hi for p, (_lo, hi) in bus.watermarks(RAW).items()}
        assert any(committed.get(p, 0) < ends[p] for p in victim_parts), "victim was done"
        held, windows = live_state(bus, victim_parts)
        assert held > 0, f"no state in the victim's partitions: {held}, {windows}"
        assert windows > 0, f"no state in the victim's partitions: {held}, {windows}"
        _finish(bus, group, total, logs)
        assert _assignments(bootstrap, group).get("logfactory-two", set()) >= victim_parts
        outputs = read_outputs(bus)
    finally:
        for proc in workers:
            stop_process(proc)
        bus.close()
    problems = check(outputs, traffic.expected, workers=2)
    assert not problems, "\n".join(problems)
