"""Issue 3: the pattern library is shared by the workers of a group through the compacted
topic. A template one worker discovers reaches the other at its next library sync (every
``EXPIRE_INTERVAL_S``, 0.5 s), so the other does not announce it again; two workers that
discover the same template in the same instant announce it under one event id."""

from __future__ import annotations

import time
import uuid
import zlib
from pathlib import Path
from typing import Any

import pytest

from logfactory.bus import open_bus
from logfactory.bus.base import Bus
from logfactory.bus.kafka import KafkaBus
from logfactory.config import Config, parse_config
from logfactory.event import decode_event
from logfactory.factory.worker import FactoryWorker
from logfactory.record import encode_record, make_record
from logfactory.stats import StatsRegistry
from logfactory.subscribe import Subscriber
from logfactory.topics import RAW

pytestmark = pytest.mark.integration

CONFIG = """
node: {{name: share, data_dir: {data}}}
bus:
  type: kafka
  partitions: 2
  kafka: {{bootstrap.servers: "{bootstrap}", session.timeout.ms: 6000}}
workshops:
  syslog: {{format: syslog}}
factory: {{group: {group}, batch_size: 50}}
"""


def _host_on(partition: int) -> str:
    return next(h for i in range(100) if zlib.crc32((h := f"cn{i:02d}").encode()) % 2 == partition)


def _send(bus: Bus, host: str, message: str) -> None:
    producer = bus.producer()
    line = f"<30>Nov 22 00:10:42 {host} raidmon: {message}"
    producer.produce(RAW, encode_record(make_record("syslog", host, line)), host.encode())
    producer.close()


def _announced(bus: KafkaBus) -> list[tuple[str, str]]:
    """(event id, pattern id) of every committed NEW_PATTERN message, duplicates included."""
    topic = "events.NEW_PATTERN"
    consumer = bus.consumer(None, [topic], "earliest")
    ends = {(topic, p): hi for p, (_lo, hi) in bus.watermarks(topic).items()}
    out: list[tuple[str, str]] = []
    try:
        for _ in range(100):
            if all(consumer.position().get(tp, 0) >= hi for tp, hi in ends.items()):
                break
            for msg in consumer.poll(1000, timeout=0.2):
                event = decode_event(msg.value)
                out.append((event.header.id, str(event.header.pattern)))
    finally:
        consumer.close()
    return out


def _step(worker: FactoryWorker) -> None:
    worker.process_batch(worker.consumer.poll(50, timeout=0.05))


def _owners(a: FactoryWorker, b: FactoryWorker) -> dict[int, FactoryWorker]:
    deadline = time.monotonic() + 60
    while True:  # both must have joined and split the two partitions
        _step(a)
        _step(b)
        pa, pb = a.consumer.assignment(), b.consumer.assignment()
        if len(pa) == len(pb) == 1:
            return {pa[0][1]: a, pb[0][1]: b}
        assert time.monotonic() < deadline, f"no split: {pa} / {pb}"


def _workers(config: Config) -> tuple[FactoryWorker, FactoryWorker, list[Bus]]:
    buses = [open_bus(config, worker="a"), open_bus(config, worker="b")]
    a = FactoryWorker(config, buses[0], StatsRegistry("a"))
    b = FactoryWorker(config, buses[1], StatsRegistry("b"))
    return a, b, buses


def test_workers_share_discovered_templates(tmp_path: Path, make_kafka: Any) -> None:
    bootstrap = make_kafka(1).bootstrap
    group = f"factory-{uuid.uuid4().hex[:8]}"
    config = parse_config(CONFIG.format(data=tmp_path / "d", bootstrap=bootstrap, group=group))
    bus = open_bus(config)
    assert isinstance(bus, KafkaBus)
    a, b, buses = _workers(config)
    try:
        owner = _owners(a, b)
        first, second = owner[0], owner[1]

        # one worker discovers a template; the other learns it at its next sync
        _send(bus, _host_on(0), "controller reset on port 1")
        deadline = time.monotonic() + 30
        while not (announced := _announced(bus)):
            _step(first)
            assert time.monotonic() < deadline, "the template was never announced"
        assert len(announced) == 1
        pattern = announced[0][1]
        committed_at = time.monotonic()
        while second.library.get(pattern) is None:
            _step(second)
            assert time.monotonic() < committed_at + 10, "the other worker never learned it"
        print(f"\nlearned by the other worker {time.monotonic() - committed_at:.3f} s after commit")
        # ...so the same template on the other worker's partition is not announced again
        _send(bus, _host_on(1), "controller reset on port 2")
        deadline = time.monotonic() + 30
        while sum(bus.committed(group, RAW).values()) < 2:
            _step(second)
            assert time.monotonic() < deadline
        assert _announced(bus) == announced

        # both discover one template in the same instant: two messages, one event id
        _send(bus, _host_on(0), "battery learn cycle started on adapter 3")
        _send(bus, _host_on(1), "battery learn cycle started on adapter 4")
        batches = {w: list[Any]() for w in (first, second)}
        deadline = time.monotonic() + 30
        while not all(batches.values()):
            for w in batches:
                if not batches[w]:
                    batches[w] = w.consumer.poll(50, timeout=0.1)
            assert time.monotonic() < deadline, "records never arrived"
        prepared = [w.prepare(batch) for w, batch in batches.items()]
        for w, p in zip(batches, prepared, strict=True):
            assert p is not None
            w.commit(p)
        raced = [x for x in _announced(bus) if x[1] != pattern]
        assert len(raced) == 2, raced
        assert raced[0] == raced[1], raced

        # a subscriber sees each announced template once
        sub = Subscriber(["NEW_PATTERN"], config=config, bus=bus, start="earliest")
        seen: list[str] = []
        deadline = time.monotonic() + 10
        while len(seen) < 2 and time.monotonic() < deadline:
            seen += [e["header"]["id"] for e in sub.poll(0.2)]
        seen += [e["header"]["id"] for e in sub.poll(0.5)]
        sub.close()
        assert sorted(seen) == sorted({announced[0][0], raced[0][0]})
    finally:
        a.close()
        b.close()
        for x in buses:
            x.close()
        bus.close()
