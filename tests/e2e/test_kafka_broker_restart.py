"""Issue 3, failure test 2: one broker of three stops mid-stream and comes back; the factory
loses and duplicates nothing (replication 3, min ISR 2, acks=all, transactions)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.nodes import stop_process

from logfactory.bus import open_bus
from logfactory.bus.base import BusError
from logfactory.bus.kafka import KafkaBus
from logfactory.config import load_config
from logfactory.event import decode_event
from logfactory.record import encode_record, make_record
from logfactory.topics import RAW, ensure_topics

# its own waits add up to 120 + 180 + 60 s in the worst case: let them, not pytest, decide
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(480)]

N = 20_000
CONFIG = """
node: {{name: restart, data_dir: {data}}}
bus:
  type: kafka
  partitions: 3
  kafka:
    bootstrap.servers: "{bootstrap}"
    replication.factor: 3
    min.insync.replicas: 2
    session.timeout.ms: 6000
workshops:
  sce: {{format: kv, fields: [time, host, user, addr, op, params], time_field: time}}
factory: {{group: {group}}}
mappings:
  - name: user-op
    when: {{workshop: sce}}
    type: USER_OP
    body: {{user: "{{user}}", op: "{{op}}"}}
"""


def _produce(bus: KafkaBus, start: int, stop: int) -> None:
    producer = bus.producer()
    for i in range(start, stop):
        host = f"login{i % 16:02d}"
        line = f"2026-11-22 00:10:42|{host}|usr{i}|10.0.0.{i % 250}|SUBMIT_JOB|n={i}"
        producer.produce(RAW, encode_record(make_record("sce", host, line)), host.encode())
    producer.flush()
    producer.close()


def _stacks(worker: subprocess.Popen[bytes], log: Path) -> str:
    """The worker's log once its threads' stacks (SIGUSR1, faulthandler) are in it."""
    before = log.read_text(errors="replace").count("most recent call first")
    worker.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 10
    text = log.read_text(errors="replace")
    while text.count("most recent call first") <= before and time.monotonic() < deadline:
        time.sleep(0.05)
        text = log.read_text(errors="replace")
    return text


def test_one_broker_of_three_stops_and_returns(tmp_path: Path, make_kafka: Any) -> None:
    # a cluster of its own: the node's topic names are fixed, and the shared cluster's history
    # of stopped and killed nodes (the smoke tests) must not decide this test
    kafka_cluster = make_kafka(3)
    group = f"factory-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "restart.yaml"
    path.write_text(
        CONFIG.format(data=tmp_path / "d", bootstrap=kafka_cluster.bootstrap, group=group)
    )
    config = load_config(path)
    bus = open_bus(config)
    assert isinstance(bus, KafkaBus)
    ensure_topics(bus, config)

    last_error: list[str] = []

    def committed() -> int:
        try:
            return sum(bus.committed(group, RAW).values())
        except BusError as exc:  # the coordinator may be moving while a broker is down: ask again
            last_error[:] = [str(exc)]
            return -1

    _produce(bus, 0, N // 2)
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "logfactory", "factory", "-c", str(path)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while committed() < N // 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert committed() >= N // 4
        kafka_cluster.stop(1)
        try:
            _produce(bus, N // 2, N)  # acks=all still succeeds with two in sync
        finally:
            kafka_cluster.start(1)
        deadline = time.monotonic() + 180
        while committed() < N and time.monotonic() < deadline:
            time.sleep(0.2)
        if committed() != N:
            raise AssertionError(
                f"committed {committed()} of {N} (last error: {last_error}); worker log:\n"
                + _stacks(worker, tmp_path / "worker.log")[-6000:]
            )
    finally:
        stop_process(worker)  # the worker itself exits within SHUTDOWN_GRACE_S

    topic = "events.USER_OP"
    consumer = bus.consumer(None, [topic], "earliest")
    ends = {(topic, p): hi for p, (_lo, hi) in bus.watermarks(topic).items()}
    ids: Counter[str] = Counter()
    for _ in range(1000):
        if all(consumer.position().get(tp, 0) >= hi for tp, hi in ends.items()):
            break
        for msg in consumer.poll(5000, timeout=0.5):
            ids[decode_event(msg.value).header.id] += 1
    consumer.close()
    bus.close()
    assert len(ids) == N, f"{N - len(ids)} events lost"
    assert max(ids.values()) == 1, "an event was delivered twice"
