"""The deadline around librdkafka calls that can hang past their own timeout (librdkafka#5456).

No broker is needed: the guard is about what happens around the call, so the calls here are
plain functions that return, fail, or never return.
"""

from __future__ import annotations

import threading

import pytest

from logfactory.bus.base import BusError
from logfactory.bus.kafka import txn as kafka_txn
from logfactory.bus.kafka.txn import TxnProducer


def _producer() -> TxnProducer:
    producer = TxnProducer.__new__(TxnProducer)  # no librdkafka instance behind it
    producer.transactional_id = "logfactory.g.0"
    producer.broken = producer.abandoned = producer._closed = False
    return producer


def test_a_call_that_returns_passes_through() -> None:
    seen: list[int] = []
    producer = _producer()
    producer._guarded("op", seen.append, 7)
    assert seen == [7]
    assert not producer.broken
    assert not producer.abandoned


def test_a_call_that_fails_raises_its_own_error() -> None:
    def fail() -> None:
        raise ValueError("from librdkafka")

    producer = _producer()
    with pytest.raises(ValueError, match="from librdkafka"):
        producer._guarded("op", fail)
    assert not producer.abandoned


def test_a_call_that_never_returns_abandons_the_producer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_txn, "GUARD_S", 0.05)
    release = threading.Event()
    producer = _producer()
    try:
        with pytest.raises(BusError, match="send_offsets_to_transaction did not return"):
            producer._guarded("send_offsets_to_transaction", release.wait)
        assert producer.broken
        assert producer.abandoned
        producer.close()  # must not touch the librdkafka instance a call is still inside
        assert producer._closed
    finally:
        release.set()
