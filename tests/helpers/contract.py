"""The bus contract's seams: what a bus factory offers the tests, and another process on the
same bus (:class:`Child`, running ``bus_child.py``) with line-based readiness signals."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Protocol

from logfactory.bus.base import Bus

HELPER = Path(__file__).with_name("bus_child.py")


class BusFactory(Protocol):
    kind: str

    def __call__(self, *, session_timeout_ms: int = 10_000) -> Bus:
        """A handle on a fresh bus. ``session_timeout_ms``: a member that neither polls nor
        commits for this long loses its partitions (Kafka: ``max.poll.interval.ms``)."""

    def another(self, bus: Bus) -> Bus:
        """A second, independent handle on the same bus, as another process would open."""

    def child_spec(self, bus: Bus) -> str:
        """What a subprocess passes to ``bus_child.open_bus`` to reach the same bus."""


# -- subprocesses ---------------------------------------------------------------------------
class Child:
    """A helper process with line-based readiness signals on stdout."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HELPER), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.stderr = ""
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def line(self, timeout: float = 20.0) -> str:
        """The next line the child prints; fails the test if it exits or stays silent."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"child silent for {timeout}s: {self.proc.args!r}") from None
        if line is None:
            self.proc.wait()
            raise AssertionError(f"child exited {self.proc.returncode}: {self._err()}")
        return line

    def expect(self, wanted: str, timeout: float = 20.0) -> None:
        got = self.line(timeout)
        assert got == wanted, f"child said {got!r}, expected {wanted!r}"

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def kill(self, reap: bool = True) -> None:
        """SIGKILL: no cleanup runs in the child. ``reap`` collects the zombie."""
        os.kill(self.proc.pid, signal.SIGKILL)
        if reap:
            self.proc.wait(timeout=10)

    def finish(self, timeout: float = 30.0) -> str:
        """Wait for a clean exit; returns stderr (which the caller may inspect)."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        self.proc.wait(timeout=timeout)
        err = self._err()
        assert self.proc.returncode == 0, f"child exited {self.proc.returncode}: {err}"
        return err

    def _err(self) -> str:
        if self.proc.stderr is not None and not self.proc.stderr.closed:
            self.stderr = self.proc.stderr.read()
            self.proc.stderr.close()
        return self.stderr
