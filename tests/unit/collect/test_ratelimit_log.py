"""Repeated errors are logged once, then at most once per interval with a count (fake clock),
and a Kafka input whose broker is down logs each distinct error once instead of ~20 a second."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import pytest
from tests.helpers.configs import source_as

from logfactory.collect.ratelimit_log import RateLimitedLog
from logfactory.collect.sources import kafka_input
from logfactory.collect.sources.context import SourceContext
from logfactory.collect.sources.kafka_input import KafkaInputSource
from logfactory.config import KafkaSourceConfig
from logfactory.record import Record

log = logging.getLogger("test.ratelimit")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == log.name]


def test_first_in_full_then_one_per_interval_with_the_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    limited = RateLimitedLog(log, 30.0, clock=clock)
    with caplog.at_level(logging.INFO, logger=log.name):
        assert limited.warning("refused", "broker %s: refused", "b1")
        for _ in range(99):
            clock.now += 0.1
            assert not limited.warning("refused", "broker %s: refused", "b1")
        assert limited.warning("timeout", "broker %s: timed out", "b1")  # another key: at once
        clock.now = 1029.9
        assert not limited.warning("refused", "broker %s: refused", "b1")
        clock.now = 1030.0
        assert limited.warning("refused", "broker %s: refused", "b1")
        clock.now += 30.0
        assert limited.warning("refused", "broker %s: refused", "b1")  # nothing left out since
    assert messages(caplog) == [
        "broker b1: refused",
        "broker b1: timed out",
        "broker b1: refused (100 more since the last report)",
        "broker b1: refused",
    ]
    assert [r.levelno for r in caplog.records] == [logging.WARNING] * 4


def test_a_message_that_is_not_a_format_keeps_its_percent_signs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    limited = RateLimitedLog(log, 10.0, clock=clock)
    with caplog.at_level(logging.INFO, logger=log.name):
        limited.log(logging.ERROR, "k", "disk 100% full")
        limited.log(logging.ERROR, "k", "disk 100% full")
        clock.now += 10.0
        limited.log(logging.ERROR, "k", "disk 100% full")
    assert messages(caplog) == ["disk 100% full", "disk 100% full (1 more since the last report)"]


def test_keys_are_bounded() -> None:
    clock = Clock()
    limited = RateLimitedLog(log, 30.0, max_keys=3, clock=clock)
    for key in range(10):
        limited.log(logging.DEBUG, key, "x")
    assert list(limited._keys) == [7, 8, 9]
    assert limited.log(logging.DEBUG, 0, "x")  # forgotten: logged again


def test_a_kafka_source_whose_broker_is_down_logs_each_error_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """librdkafka reports every failed connection (about 20 a second to a refusing port), each
    to the error callback and to the logger: counted every time, logged once per interval."""
    monkeypatch.setattr(kafka_input, "ERROR_LOG_INTERVAL_S", 3600.0)  # no second report here
    closed = socket.socket()  # bound, never listening: every connection is refused
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    config = source_as(
        KafkaSourceConfig,
        type="kafka",
        name="site",
        kafka={"bootstrap.servers": f"127.0.0.1:{port}"},
        topics=["t"],
    )
    src = KafkaInputSource(config, SourceContext(Path("unused")))  # offsets live in Kafka

    def errors() -> int:
        return int(src.registry.snapshot()["counters"].get("source:site", {}).get("errors", 0))

    async def emit(record: Record) -> None:
        raise AssertionError("no broker, no records")

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(src.run(emit, stop))  # type: ignore[arg-type]
        try:
            async with asyncio.timeout(60):
                while errors() < 20:
                    await asyncio.sleep(0.05)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
            await asyncio.to_thread(src.close)

    try:
        with caplog.at_level(logging.INFO, logger=kafka_input.__name__):
            asyncio.run(main())
    finally:
        closed.close()
    lines = [r.getMessage() for r in caplog.records if r.name == kafka_input.__name__]
    refused = [line for line in lines if "Connection refused" in line]
    assert len(refused) == 1, lines
    assert len(lines) <= 5, lines  # a few distinct messages, not one per error
    assert errors() >= 20
