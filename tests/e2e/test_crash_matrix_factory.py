"""Crash matrix, factory on the embedded bus: SIGKILL the factory three times while every kind
of state is live, restart it, and compare every output topic with an independent model.

Why: the factory promises exactly once across crashes for everything it makes, not only for
single-line records of one type. The traffic (``tests/crash_traffic.py``) keeps multi-line
records open, threshold windows partial or suppressed, templates being announced and dead
letters being written at every batch boundary, so each kill lands with all of that in flight.
After the restarts each of ``events.*``, ``logs.parsed``, ``logs.deadletter`` and the
NEW_PATTERN announcements must hold exactly the model's units: none lost, none twice,
composites fired once, every trace whole. (Supersedes ``test_factory_crash.py``, whose
single-line, one-type traffic is a subset of this.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tests.helpers.crash_traffic import (
    check,
    config_yaml,
    generate,
    live_state,
    produce,
    read_outputs,
    settle,
)  # fmt: skip
from tests.helpers.nodes import stop_process
from tests.helpers.waiting import wait_for

from logfactory.bus.local import LocalBus
from logfactory.config import load_config
from logfactory.topics import RAW, ensure_topics

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

LINES = 20_000


def _factory(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "logfactory", "factory", "-c", str(config)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=config.parent,
        )  # fmt: skip


def test_factory_sigkill_with_every_kind_of_state_live(tmp_path: Path) -> None:
    traffic = generate(LINES)
    expected = traffic.expected
    path = tmp_path / "crash.yaml"
    path.write_text(config_yaml(str(tmp_path / "data")))
    config = load_config(path)
    bus = LocalBus(Path(config.node.data_dir) / "bus")
    ensure_topics(bus, config)
    total = produce(bus, traffic.lines)
    log = tmp_path / "factory.log"

    def committed() -> int:
        return sum(bus.committed(config.factory.group, RAW).values())

    try:
        for fraction in (0.2, 0.45, 0.7):
            proc = _factory(path, log)
            before = committed()
            target = total * fraction
            wait_for(lambda: committed() >= target, 120, f"{fraction:.0%} committed")  # noqa: B023
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            at_kill = committed()
            assert before < at_kill < total, "the kill must land mid-stream"
            held, windows = live_state(bus)
            assert held > 0, f"no state in flight at the kill: {held}, {windows}"
            assert windows > 0, f"no state in flight at the kill: {held}, {windows}"

        proc = _factory(path, log)
        try:
            waited = settle(bus, config.factory.group, total, 120)
            assert waited is None, waited + "\n" + log.read_text()[-3000:]
        finally:
            stop_process(proc)
        outputs = read_outputs(bus)
    finally:
        bus.close()
    problems = check(outputs, expected)
    assert not problems, "\n".join(problems) + "\n" + log.read_text()[-3000:]
    # the model is not vacuous: every kind of unit is there
    assert expected.traces > 500
    assert len(expected.attacks) > 100
    assert len(expected.templates) == 40
    assert {stage for stage, _h in expected.deadletters.values()} == {"intake", "sort", "decode"}
