"""A consumer whose group coordinator stops answering still closes (librdkafka#3740).

librdkafka's close retries its coordinator query for ever when the coordinator is silent; a
worker that is shutting down or being rebuilt after a bus error must not hang on it. The broker
is frozen with SIGSTOP (its sockets stay open, nothing answers), which is the case a crashed
host or a long GC pause produces.
"""

from __future__ import annotations

import logging
import os
import signal
import uuid
from typing import Any

import pytest

from logfactory.bus.kafka import KafkaBus
from logfactory.bus.kafka import consumer as kafka_consumer
from logfactory.record import encode_record, make_record

pytestmark = pytest.mark.integration


def test_close_returns_when_the_coordinator_is_frozen(
    make_kafka: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cluster = make_kafka(1)
    bus = KafkaBus(cluster.bootstrap, config={"log_level": 0}, partitions=1)
    topic = f"t-{uuid.uuid4().hex[:8]}"
    producer = bus.producer()
    producer.produce(topic, encode_record(make_record("sce", "h1", "one line")), b"h1")
    producer.flush()
    producer.close()
    consumer = bus.consumer(f"g-{topic}", [topic], "earliest")
    got = []
    for _ in range(200):  # joined and fetching: the group has a live coordinator
        got += consumer.poll(10, timeout=0.1)
        if got:
            break
    assert len(got) == 1
    monkeypatch.setattr(kafka_consumer, "CLOSE_WAIT_S", 1.0)
    proc = cluster.nodes[0].proc
    assert proc is not None
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        with caplog.at_level(logging.WARNING, logger=kafka_consumer.__name__):
            consumer.close()
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    assert any("did not leave within" in r.getMessage() for r in caplog.records)
    assert "consumer is closed" in _closed_error(consumer)


def _closed_error(consumer: Any) -> str:
    try:
        consumer.poll(1, timeout=0)
    except Exception as exc:  # the contract: a closed consumer refuses clearly
        return str(exc)
    return ""
