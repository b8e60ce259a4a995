"""Issue 3, failure test 1: SIGKILL one of two factory workers on Kafka while 100,000 records
flow; after the rebalance every record's event arrives exactly once (compared by id)."""

from __future__ import annotations

import os
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
from logfactory.bus.kafka import KafkaBus
from logfactory.config import load_config
from logfactory.event import decode_event
from logfactory.record import encode_record, make_record
from logfactory.topics import RAW, ensure_topics

# its own waits add up to 120 + 180 + 60 s in the worst case: let them, not pytest, decide
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(480)]

N = 100_000
CONFIG = """
node: {{name: failover, data_dir: {data}}}
bus:
  type: kafka
  partitions: 4
  kafka: {{bootstrap.servers: "{bootstrap}", session.timeout.ms: 6000}}
workshops:
  sce: {{format: kv, fields: [time, host, user, addr, op, params], time_field: time}}
factory: {{group: {group}}}
mappings:
  - name: user-op
    when: {{workshop: sce}}
    type: USER_OP
    subtype: "{{op}}"
    body: {{user: "{{user}}", op: "{{op}}"}}
"""


def _worker(config: Path, worker_id: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "logfactory", "factory", "-c", str(config),
             "--worker-id", worker_id],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def test_sigkill_one_of_two_workers_every_event_exactly_once(
    tmp_path: Path, make_kafka: Any
) -> None:
    # a broker of its own: the node's topic names (logs.raw, events.*) are fixed
    kafka_bootstrap = make_kafka(1).bootstrap
    group = f"factory-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "failover.yaml"
    path.write_text(CONFIG.format(data=tmp_path / "d", bootstrap=kafka_bootstrap, group=group))
    config = load_config(path)
    bus = open_bus(config)
    assert isinstance(bus, KafkaBus)
    ensure_topics(bus, config)
    producer = bus.producer()
    for i in range(N):
        host = f"login{i % 16:02d}"
        line = f"2026-11-22 00:10:42|{host}|usr{i}|10.0.0.{i % 250}|QUERY_RESOURCE|n={i}"
        producer.produce(RAW, encode_record(make_record("sce", host, line)), host.encode())
    producer.flush()
    producer.close()

    def committed() -> int:
        return sum(bus.committed(group, RAW).values())

    workers = [_worker(path, str(i), tmp_path / f"w{i}.log") for i in (1, 2)]
    try:
        deadline = time.monotonic() + 120
        while committed() < N // 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        os.killpg(workers[0].pid, signal.SIGKILL)
        workers[0].wait()
        assert N // 4 <= committed() < N, "the kill must land mid-stream"
        deadline = time.monotonic() + 180
        while committed() < N and time.monotonic() < deadline:
            time.sleep(0.2)
        assert committed() == N, (tmp_path / "w2.log").read_text()[-2000:]
    finally:
        for proc in workers:
            stop_process(proc)  # the worker itself exits within SHUTDOWN_GRACE_S

    consumer = bus.consumer(None, ["events.USER_OP"], "earliest")
    ends = {("events.USER_OP", p): hi for p, (_lo, hi) in bus.watermarks("events.USER_OP").items()}
    ids: Counter[str] = Counter()
    for _ in range(2000):
        if all(consumer.position().get(tp, 0) >= hi for tp, hi in ends.items()):
            break
        for msg in consumer.poll(5000, timeout=0.5):
            ids[decode_event(msg.value).header.id] += 1
    consumer.close()
    bus.close()
    assert len(ids) == N, f"{N - len(ids)} events lost"
    assert max(ids.values()) == 1, "an event was delivered twice"
