"""``logfactory factory`` stops within its grace period even when the bus holds it.

A worker blocked in a library call that ignores the stop flag (librdkafka waiting for a broker
that does not answer) must not outlive SIGTERM for minutes: after ``SHUTDOWN_GRACE_S`` it exits
on its own, and a second signal ends it at once. The blocked worker is simulated in a child
process by a ``run_worker_resilient`` that never looks at the stop flag. (Python runs signal
handlers on the main thread only when it returns to the interpreter; a main thread parked in an
untimed lock wait would not see SIGTERM at all when the kernel hands it to another thread.)
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

CHILD = """
import sys, time
from logfactory.config import parse_config
from logfactory.factory import runner

runner.SHUTDOWN_GRACE_S = float(sys.argv[2])

def blocked(config, worker_id, registry, stop):
    print("blocked", flush=True)
    while True:  # never returns, never looks at stop; like the real loop, its thread comes
        time.sleep(0.05)  # back to Python between bounded calls (where signal handlers run)

runner.run_worker_resilient = blocked
config = parse_config("node: {name: t, data_dir: '%s'}\\n" % sys.argv[1])
sys.exit(runner.run_factory(config))
"""


Start = Callable[[float], "subprocess.Popen[str]"]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """``start(grace)``: a held worker with that grace period; killed and reaped at teardown
    whatever the test did, so no child or pipe outlives it."""
    procs: list[subprocess.Popen[str]] = []

    def run(grace: float) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path / "data"), str(grace)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        procs.append(proc)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "blocked"  # handlers are installed by now
        return proc

    yield run
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()  # reaps it and closes both pipes


def _term(proc: subprocess.Popen[str]) -> str:
    """SIGTERM, then wait until the worker says it is stopping (signals sent back to back
    would merge into one); returns what it wrote to stderr until then."""
    proc.send_signal(signal.SIGTERM)
    assert proc.stderr is not None
    seen = ""
    for line in proc.stderr:
        seen += line
        if "stopping: finishing the batch in hand" in line:
            return seen
    raise AssertionError(f"the worker never said it was stopping: {seen}")


def test_a_held_worker_exits_after_the_grace_period(start: Start) -> None:
    proc = start(0.2)
    _term(proc)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "did not stop within 0.2 s" in err


def test_a_second_signal_exits_at_once(start: Start) -> None:
    proc = start(3600)
    _term(proc)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM


def test_sigusr1_dumps_every_thread(start: Start) -> None:
    proc = start(3600)
    proc.send_signal(signal.SIGUSR1)  # dumped by faulthandler at once; the worker runs on
    err = _term(proc)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert "in blocked" in err
