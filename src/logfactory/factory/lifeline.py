"""The factory's names for the node's child lifeline (:mod:`logfactory.lifeline` says why).

Every factory writes ``<data_dir>/factory-<worker id>.pid``: a node about to start its worker
``0`` ends a live factory named there that is not its own child (two workers of one id would
fence each other's transactions on Kafka). Extra workers keep running: they have other ids.
"""

from __future__ import annotations

from pathlib import Path

from logfactory.lifeline import (
    PARENT_DEATH_SIGNAL,
    child_env,
    end_stale,
    process_stat,
    remove_pid_file,
    watch_parent,
)
from logfactory.lifeline import pid_file as _pid_file
from logfactory.lifeline import write_pid_file as _write_pid_file

__all__ = [
    "NODE_WORKER_ID",
    "PARENT_DEATH_SIGNAL",
    "child_env",
    "end_stale_factory",
    "pid_file",
    "pid_name",
    "remove_pid_file",
    "watch_parent",
    "write_pid_file",
]

NODE_WORKER_ID = "0"
"""The worker id of a node's own factory child (``logfactory factory``'s default)."""

_stat = process_stat  # tests read a process's start time through this module


def pid_name(worker_id: str) -> str:
    """The name of worker ``worker_id``'s pid file in the data directory (without ``.pid``)."""
    return f"factory-{worker_id}"


def pid_file(data_dir: Path, worker_id: str) -> Path:
    return _pid_file(data_dir, pid_name(worker_id))


def write_pid_file(data_dir: Path, worker_id: str) -> Path | None:
    """Name this factory in the data directory; None (logged) if that cannot be written."""
    return _write_pid_file(data_dir, pid_name(worker_id), worker_id=worker_id)


def end_stale_factory(
    data_dir: Path, worker_id: str = NODE_WORKER_ID, *, me: int | None = None
) -> int | None:
    """End the live factory ``worker_id`` of ``data_dir`` unless it is ``me`` (default: this
    process) or its child (see :func:`logfactory.lifeline.end_stale`)."""
    return end_stale(data_dir, pid_name(worker_id), what=f"factory (worker {worker_id})", me=me)
