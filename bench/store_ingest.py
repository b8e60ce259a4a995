"""Store ingest rate: a real ``logfactory store`` process from ``logs.parsed`` and ``events.*``.

The first :data:`INGEST_LINES` demo lines of the generator (:mod:`bench.store_data`), as the
factory made them (parsed logs and events), are put on a fresh local bus before the store
starts; then ``python -m logfactory store -c <config>`` runs from the start of its topics and
this process watches the group's committed offsets (each commit comes after the engine's:
committed means stored and searchable). The configuration is ``examples/demo.yaml`` (so every
event type the demo makes is one the store reads) with a ``store`` section for the engine.

Two rates: **steady**, records committed after the first commit was seen over the time from
that commit to the last (the process's start-up and first batch left out), and **end to end**,
every record over the time from the process's start. The store process's CPU share of one
core and its resident memory (sampled, and the kernel's high-water mark ``VmHWM`` read just
before it is stopped) are reported with them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import cpu_ticks, stop_node
from bench.store_data import BatchMaker, bench_config_text
from logfactory.bus.local import LocalBus
from logfactory.config import load_config
from logfactory.store.open import open_reader
from logfactory.store.query.tree import MatchAll, Query
from logfactory.store.role import store_topics
from logfactory.topics import ensure_topics

__all__ = ["INGEST_LINES", "StoreBus", "ingest_run"]

INGEST_LINES = 500_000
TIMEOUT_S = 900.0
TICK = os.sysconf("SC_CLK_TCK")


def _rss_kib(pid: int, key: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


class StoreBus:
    """A data directory whose local bus holds the first ``lines`` demo lines' parsed logs and
    events, ready for store processes (one consumer group per engine)."""

    def __init__(self, lines: int = INGEST_LINES) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="store-ingest-")
        self.root = Path(self._tmp.name)
        self.data = self.root / "data"
        self.config_text = bench_config_text(self.data)
        config = load_config(self._write("base.yaml", self.config_text))
        bus = LocalBus(config.data_dir / "bus")
        ensure_topics(bus, config)
        producer = bus.producer()
        maker = BatchMaker()
        self.lines = self.logs = self.records = 0
        try:
            for k in range(-(-lines // maker.batch_lines)):
                batch = maker.make(k)
                for topic, key, value in batch.messages:
                    producer.produce(topic, value, key)
                self.lines += batch.lines
                self.logs += batch.logs
                self.records += len(batch.messages)
            producer.flush()
        finally:
            producer.close()
            maker.close()
            bus.close()

    def _write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.write_text(text)
        return path

    def config_file(self, name: str, store_section: str) -> Path:
        """The demo configuration with ``store_section`` (YAML of the ``store:`` key)."""
        return self._write(f"{name}.yaml", f"{self.config_text}\n{store_section}")

    def close(self) -> None:
        self._tmp.cleanup()


def ingest_run(store_bus: StoreBus, name: str, store_section: str) -> dict[str, Any]:
    """Run a store process with ``store_section`` (its own ``group``) until every record on
    the bus is committed; the figures above."""
    cfg = store_bus.config_file(name, store_section)
    config = load_config(cfg)
    group = config.store.group
    topics = store_topics(config)
    bus = LocalBus(config.data_dir / "bus")
    total = sum(hi for t in topics for _lo, hi in bus.watermarks(t).values())
    load_before = os.getloadavg()
    t_start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "logfactory", "store", "-c", str(cfg)], start_new_session=True
    )
    rss_peak_sampled = 0
    first: tuple[float, int, int] | None = None  # (time, committed, cpu ticks)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the store process ended early (exit {proc.returncode})")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the store did not commit {total} records in {TIMEOUT_S} s")
            done = sum(sum(bus.committed(group, t).values()) for t in topics)
            now = time.perf_counter()
            rss_peak_sampled = max(rss_peak_sampled, _rss_kib(proc.pid))
            if first is None and done > 0:
                first = (now, done, cpu_ticks(proc.pid))
            if done >= total:
                break
            time.sleep(0.02)
        ticks = cpu_ticks(proc.pid)
        hwm = _rss_kib(proc.pid, "VmHWM")
        rss_end = _rss_kib(proc.pid)
    finally:
        stop_node(proc)
        bus.close()
    assert first is not None
    t_first, n_first, ticks_first = first
    steady_s = max(now - t_first, 1e-9)
    stored = _stored(config)
    return {
        "engine": config.store.engine,
        "records": total,
        "stored_after": stored,
        "rate_steady_per_s": round((total - n_first) / steady_s),
        "rate_end_to_end_per_s": round(total / (now - t_start)),
        "seconds_end_to_end": round(now - t_start, 2),
        "first_commit_after_s": round(t_first - t_start, 2),
        "store_cpu_share_of_a_core": round((ticks - ticks_first) / TICK / steady_s, 2),
        "store_rss_mib_peak": round(max(hwm, rss_peak_sampled) / 1024, 1),
        "store_rss_mib_at_end": round(rss_end / 1024, 1),
        "batch_size": config.store.batch_size,
        "commit_docs": config.store.commit_docs,
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
    }


def _stored(config: Any) -> int | None:
    """How many documents the engine holds after the run (every record, once, if all is well)."""
    reader = open_reader(config)
    try:
        return reader.count(Query(where=MatchAll()))
    finally:
        reader.close()
