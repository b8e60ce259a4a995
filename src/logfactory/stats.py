"""Counters every stage and source keeps, shared between the node's processes through files.

Each process owns a :class:`StatsRegistry` and a writer thread that replaces
``<data_dir>/stats/<process>.json`` atomically once a second; the API process merges the files.
Files beat shared memory here: they survive a crash for a post-mortem, need no locking (atomic
rename), and a dead process is detected by its pid.

A write that fails (a read-only or full disk, no descriptors left, the directory removed) never
ends the writer: it reports the problem ``stats`` in its registry (the node answers health from
its live registry, so ``/api/v1/health`` shows it; another process's health shows it silent),
logs at most once a minute, and the first write that succeeds again clears it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

__all__ = ["COUNTER_NAMES", "WARNING_PREFIX", "StatsRegistry", "StatsWriter", "read_all_stats"]

log = logging.getLogger(__name__)

COUNTER_NAMES = ("received", "sent", "dropped", "errors")
WARNING_PREFIX = "warning:"  # a problem name that does not make the node unhealthy (warning())


class StatsRegistry:
    """Named groups (``stage:decode``, ``source:syslog``) of monotonically increasing counters."""

    def __init__(self, process: str) -> None:
        self.process = process
        self.started = time.time()
        self._lock = threading.Lock()
        self._counters: dict[str, dict[str, int]] = defaultdict(dict)
        self._gauges: dict[str, float] = {}
        self._problems: dict[str, str] = {}

    def add(self, group: str, counter: str, n: int = 1) -> None:
        with self._lock:
            bucket = self._counters[group]
            bucket[counter] = bucket.get(counter, 0) + n

    def add_many(self, group: str, **counts: int) -> None:
        with self._lock:
            bucket = self._counters[group]
            for counter, n in counts.items():
                bucket[counter] = bucket.get(counter, 0) + n

    def gauge(self, name: str, value: float) -> None:
        with self._lock:
            self._gauges[name] = value

    def problem(self, name: str, text: str | None) -> None:
        """Report (``text``) or clear (``None``) a condition the health endpoint must show, e.g.
        the bus being unreachable: counters say how much happened, problems say what is wrong."""
        with self._lock:
            if text is None:
                self._problems.pop(name, None)
            else:
                self._problems[name] = text

    def warning(self, name: str, text: str | None) -> None:
        """Like :meth:`problem`, for a condition worth showing that does not make the node
        unhealthy (a file source whose globs match nothing yet while others collect): kept
        among the problems as ``warning:<name>``, which the health endpoint lists apart."""
        self.problem(WARNING_PREFIX + name, text)

    def problems(self) -> dict[str, str]:
        with self._lock:
            return dict(self._problems)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "process": self.process,
                "pid": os.getpid(),
                "started": self.started,
                "written": time.time(),
                "counters": {g: dict(c) for g, c in self._counters.items()},
                "gauges": dict(self._gauges),
                "problems": dict(self._problems),
            }


class StatsWriter:
    """Writes a registry's snapshot to ``directory`` every ``interval`` seconds until stopped;
    failures are reported and retried, never fatal (see the module docstring)."""

    PROBLEM = "stats"
    LOG_INTERVAL_S = 60.0  # at most one log line per this while writes keep failing

    def __init__(self, registry: StatsRegistry, directory: Path, interval: float = 1.0) -> None:
        self.registry = registry
        self.directory = directory
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stats-writer", daemon=True)
        self._failing_since: float | None = None
        self._make_dir = True  # at the first write and after a failure: it may have gone
        self._failures = 0  # since the last success
        self._next_log = 0.0

    def start(self) -> StatsWriter:
        """Write the first snapshot now: readers take a fresh snapshot of a live pid as the
        sign that a node runs (``readers.node_running``), from the moment it starts."""
        self.write_now()
        self._thread.start()
        return self

    def write_now(self) -> bool:
        """Write the snapshot; False (reported, logged, retried at the next tick) if it failed."""
        path = self.directory / f"{self.registry.process}.json"
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        try:
            if self._make_dir:
                self.directory.mkdir(parents=True, exist_ok=True)
                self._make_dir = False
            tmp.write_text(json.dumps(self.registry.snapshot()), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            self._failed(path, exc)
            return False
        if self._failing_since is not None:
            log.warning("stats: writing %s again after %d failed attempts", path, self._failures)
            self._failing_since, self._failures, self._next_log = None, 0, 0.0
            self.registry.problem(self.PROBLEM, None)
            return self.write_now()  # what readers see must not keep the problem a tick longer
        return True

    def _failed(self, path: Path, exc: OSError) -> None:
        self._make_dir = True
        now = time.time()
        if self._failing_since is None:
            self._failing_since = now
        self._failures += 1
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._failing_since))
        text = f"cannot write {path} since {since}: {exc}; retrying every {self.interval:g} s"
        self.registry.problem(self.PROBLEM, text)
        mono = time.monotonic()
        if mono >= self._next_log:
            self._next_log = mono + self.LOG_INTERVAL_S
            log.error("stats: %s (%d failed attempts)", text, self._failures)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.write_now()
            except Exception:  # a bug must not freeze health and stats for good either
                if time.monotonic() >= self._next_log:
                    self._next_log = time.monotonic() + self.LOG_INTERVAL_S
                    log.exception("stats: writing the snapshot failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.write_now()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_all_stats(directory: Path) -> list[dict[str, Any]]:
    """Every process's last snapshot, each with ``alive`` telling whether its pid still runs."""
    out: list[dict[str, Any]] = []
    try:
        paths = sorted(directory.glob("*.json")) if directory.is_dir() else []
    except OSError:  # e.g. no descriptor left: nothing to read this time, not an error to raise
        return out
    for path in paths:
        try:
            snap = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(snap, dict):
            snap["alive"] = _alive(int(snap.get("pid", 0)))
            out.append(snap)
    return out
