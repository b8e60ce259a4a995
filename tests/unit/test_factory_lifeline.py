"""``end_stale_factory`` ends only the process its pid file names, never a reused pid or a child.

The end-to-end behaviour (a killed node's factory ends; a node's start ends a stale worker 0) is
in ``tests/e2e/test_factory_lifeline.py``; here, what makes ending a process safe.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from logfactory.factory import lifeline


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen[bytes]]:
    """A live process, our child: ``me=1`` makes it a stranger's."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _name(data: Path, pid: int, start: int | None, worker: str = "0") -> None:
    data.mkdir(exist_ok=True)
    info = {"pid": pid, "start": start, "worker_id": worker}
    lifeline.pid_file(data, worker).write_text(json.dumps(info))


def _start_of(pid: int) -> int:
    stat = lifeline._stat(pid)
    assert stat is not None
    return stat[2]


def test_a_pid_file_naming_a_reused_pid_ends_nothing(
    tmp_path: Path, stranger: subprocess.Popen[bytes]
) -> None:
    _name(tmp_path, stranger.pid, _start_of(stranger.pid) + 1)  # same pid, another process
    assert lifeline.end_stale_factory(tmp_path, me=1) is None  # me=1: not our child then
    assert stranger.poll() is None


def test_the_named_process_is_ended_unless_it_is_our_child(
    tmp_path: Path, stranger: subprocess.Popen[bytes]
) -> None:
    _name(tmp_path, stranger.pid, _start_of(stranger.pid))
    assert lifeline.end_stale_factory(tmp_path) is None  # our own child: the node's factory
    assert stranger.poll() is None
    assert lifeline.end_stale_factory(tmp_path, "1") is None  # another worker id: no file

    assert lifeline.end_stale_factory(tmp_path, me=1) == stranger.pid
    assert stranger.wait(timeout=30) == -15  # SIGTERM: the factory's clean stop


def test_pid_files_are_written_and_removed_by_their_own_process(tmp_path: Path) -> None:
    path = lifeline.write_pid_file(tmp_path / "data", "a/b")
    assert path == tmp_path / "data" / "factory-a_b.pid"
    info = json.loads(path.read_text())
    assert (info["pid"], info["start"]) == (os.getpid(), _start_of(os.getpid()))
    _name(tmp_path / "data", os.getpid() + 1, 0, "a_b")  # a later factory replaced it
    lifeline.remove_pid_file(path)
    assert path.exists()
    _name(tmp_path / "data", os.getpid(), 0, "a_b")
    lifeline.remove_pid_file(path)
    assert not path.exists()
    (tmp_path / "file").write_text("")
    assert lifeline.write_pid_file(tmp_path / "file" / "data", "0") is None  # logged, no raise
