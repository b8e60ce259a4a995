"""SIGKILL the factory mid-stream, restart it: every event arrives exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from logfactory.bus.local import LocalBus
from logfactory.config import load_config
from logfactory.event import decode_event
from logfactory.record import encode_record, make_record
from logfactory.topics import RAW, ensure_topics

from .conftest import demo_config

pytestmark = pytest.mark.e2e

N = 30_000


def _factory(config: Path, cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "logfactory", "factory", "-c", str(config)],
        cwd=cwd,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
    )


def test_sigkill_mid_stream_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    config_path, _, _ = demo_config(tmp_path)
    config = load_config(config_path)
    bus = LocalBus(Path(config.node.data_dir) / "bus")
    ensure_topics(bus, config)
    producer = bus.producer()
    for i in range(N):
        host = f"login{i % 7:02d}"
        line = f"2026-11-22 00:10:42|{host}|usr{i}|10.0.0.{i % 250}|QUERY_RESOURCE|n={i}"
        producer.produce(RAW, encode_record(make_record("sce", host, line.encode())), host.encode())
    producer.flush()
    producer.close()

    def committed() -> int:
        return sum(bus.committed(config.factory.group, RAW).values())

    for _kill in range(2):
        proc = _factory(config_path, tmp_path)
        before = committed()
        deadline = time.monotonic() + 60
        while committed() < before + N // 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert before < committed() < N, "the kill must land mid-stream"

    proc = _factory(config_path, tmp_path)
    try:
        deadline = time.monotonic() + 120
        while committed() < N and time.monotonic() < deadline:
            time.sleep(0.05)
        assert committed() == N
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)

    consumer = bus.consumer(None, ["events.USER_OP"], "earliest")
    ids: Counter[str] = Counter()
    users: Counter[str] = Counter()
    while batch := consumer.poll(5000, timeout=0.5):
        for msg in batch:
            event = decode_event(msg.value)
            ids[event.header.id] += 1
            users[str(event.body["user"])] += 1
    consumer.close()
    bus.close()
    assert len(ids) == N, f"{N - len(ids)} events lost"
    assert max(ids.values()) == 1, "an event was duplicated"
    assert set(users) == {f"usr{i}" for i in range(N)}
