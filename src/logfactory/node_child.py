"""A role the node runs as a child process and supervises: the event factory's worker 0
(``logfactory factory``) and the log store (``logfactory store``).

The child is tied to the node by :mod:`logfactory.lifeline` (it stops when the node is gone,
even killed) and named in ``<data_dir>/<pid name>.pid``, so a node's start first ends one that
an earlier node left behind. It is started from the node's main thread: the kernel's
parent-death signal follows the thread that started the child.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from logfactory.lifeline import child_env, end_stale

__all__ = ["ChildRole"]


class ChildRole:
    """One supervised child: ``start`` (after ending a stale one), ``exited``, ``stop``."""

    STOP_TIMEOUT_S = 30.0  # it commits the batch in hand; then it is killed (nothing is lost)

    def __init__(self, role: str, cmd: list[str], data_dir: Path, pid_name: str) -> None:
        self.role = role
        self.cmd = cmd
        self.data_dir = data_dir
        self.pid_name = pid_name
        self.proc: subprocess.Popen[bytes] | None = None
        self._pipe: int | None = None  # its lifeline's write end, closed once it has exited

    def end_stale(self) -> int | None:
        """End a live process of this role and data directory that is not our child."""
        return end_stale(self.data_dir, self.pid_name, what=self.role)

    def start(self) -> int:
        """Start the child; its pid."""
        self._close_pipe()
        read_end, self._pipe = os.pipe()  # both close-on-exec; read_end is passed
        try:
            self.proc = subprocess.Popen(
                self.cmd, start_new_session=True, pass_fds=(read_end,), env=child_env(read_end)
            )
        except OSError:
            self._close_pipe()
            raise
        finally:
            os.close(read_end)
        return self.proc.pid

    def exited(self) -> int | None:
        """Its exit status once it has ended on its own, else None (running, or not started)."""
        return None if self.proc is None else self.proc.poll()

    def stop(self) -> None:
        """SIGTERM, wait for its clean stop, SIGKILL after :data:`STOP_TIMEOUT_S`."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=self.STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._close_pipe()

    def _close_pipe(self) -> None:
        """Closing it tells the child the node is gone: only once it has exited, or failed."""
        if self._pipe is not None:
            os.close(self._pipe)
            self._pipe = None
