"""A group-offsets query that gets no answer is asked once more of a new reader (librdkafka#5511).

The "broker" is a socket that accepts connections and never answers, as a frozen or half-gone
coordinator does; librdkafka's requests to it time out.
"""

from __future__ import annotations

import logging
import socket

import pytest
from confluent_kafka import Consumer as RdConsumer

from logfactory.bus.base import BusError
from logfactory.bus.kafka import KafkaBus
from logfactory.bus.kafka import group_offsets as kafka_group_offsets


def test_a_timed_out_query_renews_the_reader_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(kafka_group_offsets, "GROUP_TIMEOUT", 1.0)
    monkeypatch.setattr(kafka_group_offsets, "COLD_WAIT", 0.5)
    made: list[object] = []

    class Counted(RdConsumer):
        def __init__(self, conf: dict[str, object]) -> None:
            super().__init__(conf)
            made.append(self)

    monkeypatch.setattr(kafka_group_offsets, "RdConsumer", Counted)
    with socket.create_server(("127.0.0.1", 0)) as silent:
        bus = KafkaBus(f"127.0.0.1:{silent.getsockname()[1]}", config={"log_level": 0})
        bus._parts["logs.raw"] = 1  # known already: the query goes straight to the group
        offsets = bus._group_offsets
        try:
            with (
                caplog.at_level(logging.WARNING, logger=kafka_group_offsets.__name__),
                pytest.raises(BusError, match="committed offsets of group 'factory'"),
            ):
                bus.committed("factory", "logs.raw")
            renewals = [r for r in caplog.records if "asking again" in r.getMessage()]
            assert len(renewals) == 1  # once per query: a second time-out is the caller's answer
            # read_committed (no answer: settles for the last committed), read_uncommitted,
            # then a new read_uncommitted one
            assert len(made) == 3
            assert list(offsets._readers.values()) == [made[0], made[2]]
            bus.close()
            assert not offsets._readers  # closed with the bus
        finally:
            bus.close()
