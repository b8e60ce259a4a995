"""The event factory on a real Kafka broker: a worker restarted from scratch resumes from the
committed offsets and re-learns the shared pattern library (issue 3, failure test 4)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from logfactory.bus import open_bus
from logfactory.bus.kafka import KafkaBus
from logfactory.config import parse_config
from logfactory.factory.worker import FactoryWorker
from logfactory.record import encode_record, make_record
from logfactory.stats import StatsRegistry
from logfactory.topics import PARSED, RAW

pytestmark = pytest.mark.integration

CONFIG = """
node: {{name: kf, data_dir: {data}}}
bus:
  type: kafka
  partitions: 2
  kafka: {{bootstrap.servers: "{bootstrap}", session.timeout.ms: 6000}}
workshops:
  syslog: {{format: syslog}}
factory: {{group: {group}, batch_size: 50}}
"""
N = 200


def _count(bus: KafkaBus, topic: str) -> int:
    consumer = bus.consumer(None, [topic], "earliest")
    ends = {(topic, p): hi for p, (_lo, hi) in bus.watermarks(topic).items()}
    seen = 0
    try:
        for _ in range(200):
            if all(consumer.position().get(tp, 0) >= hi for tp, hi in ends.items()):
                break
            seen += len(consumer.poll(1000, timeout=0.5))
    finally:
        consumer.close()
    return seen


def _run_until(worker: FactoryWorker, bus: KafkaBus, group: str, target: int) -> None:
    for _ in range(400):  # bounded: each poll waits at most 0.5 s
        if sum(bus.committed(group, RAW).values()) >= target:
            return
        worker.process_batch(worker.consumer.poll(50, timeout=0.5))
    raise AssertionError(f"committed offsets never reached {target}")


def test_restarted_worker_resumes_offsets_and_relearns_the_library(
    tmp_path: Path, make_kafka: Any
) -> None:
    # a broker of its own: the node's topic names (logs.raw, events.*) are fixed
    kafka_bootstrap = make_kafka(1).bootstrap
    group = f"factory-{uuid.uuid4().hex[:8]}"
    config = parse_config(
        CONFIG.format(data=tmp_path / "d", bootstrap=kafka_bootstrap, group=group), "kf.yaml"
    )
    bus = open_bus(config)
    assert isinstance(bus, KafkaBus)
    first = FactoryWorker(config, bus, StatsRegistry("w1"))
    producer = bus.producer()
    for i in range(N):
        text = (
            f"job {i} finished in {i * 3} ms"
            if i % 2
            else f"raid controller reset on port {i} after {i % 7} retries"
        )
        line = f"<13>Nov 22 00:10:42 host{i % 5} app: {text}"
        producer.produce(RAW, encode_record(make_record("syslog", f"host{i % 5}", line)))
    producer.flush()
    producer.close()

    _run_until(first, bus, group, N // 2)
    learned = {e.id for e in first.library.entries()}
    assert learned
    first.close()

    fresh_bus = open_bus(config)  # as a new process would
    assert isinstance(fresh_bus, KafkaBus)
    second = FactoryWorker(config, fresh_bus, StatsRegistry("w2"))
    try:
        assert learned <= {e.id for e in second.library.entries()}
        _run_until(second, fresh_bus, group, N)
    finally:
        second.close()
    assert sum(fresh_bus.committed(group, RAW).values()) == N
    assert _count(fresh_bus, PARSED) == N  # every record decoded once: no loss, no repeat
    announced = _count(fresh_bus, "events.NEW_PATTERN")
    assert announced == len({e.id for e in second.library.entries() if e.superseded_by is None})
    fresh_bus.close()
    bus.close()
