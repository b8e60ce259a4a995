"""What the test process was doing when it died of a signal, in files ``make test`` prints.

One CI run died of SIGSEGV with nothing after the progress dots: the crash was in a librdkafka
thread, which blocks signals, so no handler (pytest's faulthandler neither) could run, and the
CI log named neither the test nor the call. This plugin keeps the id of the test that is running
in ``var/pytest-running`` and points faulthandler at ``var/pytest-crash.log`` (a crash in a
Python thread writes every thread's stack there); the Makefile prints both when pytest dies.
"""

from __future__ import annotations

import faulthandler
from pathlib import Path
from typing import IO

import pytest

VAR = Path(__file__).resolve().parent.parent / "var"
CRASH_LOG = VAR / "pytest-crash.log"
RUNNING = VAR / "pytest-running"
_open: list[IO[str]] = []


@pytest.hookimpl(trylast=True)  # after pytest's faulthandler plugin, which enables on stderr
def pytest_configure(config: pytest.Config) -> None:
    VAR.mkdir(exist_ok=True)
    RUNNING.write_text("(no test yet)\n")
    out = CRASH_LOG.open("w")
    _open.append(out)
    faulthandler.enable(file=out, all_threads=True)


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    RUNNING.write_text(nodeid + "\n")


@pytest.hookimpl(tryfirst=True)  # before pytest's faulthandler plugin restores stderr
def pytest_unconfigure(config: pytest.Config) -> None:
    while _open:
        faulthandler.disable()
        _open.pop().close()
    RUNNING.write_text("(the run ended)\n")
