"""A real factory worker over lines on a local bus, run batch by batch in the test's thread until
everything it was given has come out (held multi-line records included), and what it wrote."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tests.helpers.bus import read_all
from tests.helpers.nodes import ROOT

from logfactory.bus.local import LocalBus
from logfactory.config import Config
from logfactory.factory.worker import FactoryWorker
from logfactory.record import Record, encode_record
from logfactory.stats import StatsRegistry
from logfactory.topics import RAW


def demo_config_file(tmp_path: Path) -> str:
    """examples/demo.yaml (delegation, multi-line merging) with its data under ``tmp_path``."""
    text = (ROOT / "examples" / "demo.yaml").read_text().replace("var/demo", str(tmp_path / "d"))
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return str(path)


def bus_of(config: Config) -> LocalBus:
    return LocalBus(Path(config.node.data_dir) / "bus", default_partitions=config.bus.partitions)


def put_raw(bus: LocalBus, records: Iterable[Record]) -> None:
    """Put ``records`` on ``logs.raw``, keyed by host as collectors key them."""
    producer = bus.producer()
    for record in records:
        producer.produce(RAW, encode_record(record), record.host.encode())
    producer.flush()
    producer.close()


def run_worker(config: Config, records: Iterable[Record], timeout: float = 120.0) -> None:
    """Put ``records`` on ``logs.raw`` and let one worker process all of them."""
    bus = bus_of(config)
    try:
        put_raw(bus, records)
        worker = FactoryWorker(config, bus, StatsRegistry("test"))
        try:
            deadline = time.monotonic() + timeout
            while True:
                batch = worker.consumer.poll(5000, timeout=0.1)
                worker.process_batch(batch)  # an empty batch still emits multi-line records due
                if not batch and not any(p.sorter.pending() for p in worker.parts.values()):
                    return
                assert time.monotonic() < deadline, "the worker did not finish its input"
        finally:
            worker.close()
    finally:
        bus.close()


def read_topic(config: Config, topic: str) -> list[dict[str, Any]]:
    """Every message of ``topic``, as JSON."""
    bus = bus_of(config)
    try:
        return [json.loads(m.value) for m in read_all(bus, topic)]
    finally:
        bus.close()
