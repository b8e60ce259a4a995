"""A review made outside a running worker (CLI, API, another node) reaches it within a second."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from logfactory.bus.local import LocalBus
from logfactory.config import parse_config
from logfactory.event import decode_event
from logfactory.factory.patterns.topic import load_library, save_changes
from logfactory.factory.worker import FactoryWorker
from logfactory.record import encode_record, make_record
from logfactory.stats import StatsRegistry
from logfactory.topics import RAW

CONFIG = """
node: {{name: t, data_dir: {data}}}
workshops:
  syslog: {{format: syslog}}
"""


def _events(bus: LocalBus, event_type: str) -> list[dict[str, object]]:
    consumer = bus.consumer(None, [f"events.{event_type}"], "earliest")
    out = []
    while batch := consumer.poll(1000, timeout=0.05):
        out += [decode_event(m.value) for m in batch]
    consumer.close()
    return [{"reason": e.header.reason, "pattern": e.header.pattern} for e in out]


def test_review_reaches_a_running_worker(tmp_path: Path) -> None:
    config = parse_config(CONFIG.format(data=tmp_path / "d"))
    bus = LocalBus(tmp_path / "d" / "bus")
    worker = FactoryWorker(config, bus, StatsRegistry("t"))
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    producer = bus.producer()
    try:
        line = "<13>Nov 22 00:10:42 node7 raid: controller reset on port {}"
        producer.produce(RAW, encode_record(make_record("syslog", "node7", line.format(1))))
        producer.flush()
        deadline = time.monotonic() + 10
        while not (announced := _events(bus, "NEW_PATTERN")) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(announced) == 1
        pattern = str(announced[0]["pattern"])

        reviewer = LocalBus(tmp_path / "d" / "bus")  # as the CLI in another process would
        library = load_library(reviewer)
        library.set_status(pattern, "alert", "RAID controller resets", "high")
        assert save_changes(reviewer, library) >= 1
        reviewer.close()

        reviewed_at = time.monotonic()
        alerts: list[dict[str, object]] = []
        n = 2
        while not alerts and time.monotonic() < reviewed_at + 10:
            producer.produce(RAW, encode_record(make_record("syslog", "node7", line.format(n))))
            producer.flush()
            n += 1
            time.sleep(0.1)
            alerts = _events(bus, "ALERT")
        assert alerts, "the review never reached the running worker"
        assert alerts[0]["reason"] == "RAID controller resets"
    finally:
        stop.set()
        thread.join()
        producer.close()
        bus.close()
