"""A group-offsets query that times out is asked again on a new admin client (librdkafka#5511).

The "broker" is a socket that accepts connections and never answers, as a frozen or half-gone
coordinator does; librdkafka's requests to it time out.
"""

from __future__ import annotations

import logging
import socket

import pytest

from logfactory.bus import kafka
from logfactory.bus.base import BusError
from logfactory.bus.kafka import KafkaBus


def test_a_timed_out_query_renews_the_admin_client_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(kafka, "_GROUP_TIMEOUT", 1.0)
    with socket.create_server(("127.0.0.1", 0)) as silent:
        bus = KafkaBus(f"127.0.0.1:{silent.getsockname()[1]}", config={"log_level": 0})
        bus._parts["logs.raw"] = 1  # known already: the query goes straight to the group
        first = bus._admin
        with caplog.at_level(logging.WARNING, logger=kafka.__name__), pytest.raises(BusError):
            bus.committed("factory", "logs.raw")
        renewals = [r for r in caplog.records if "renewing the admin client" in r.getMessage()]
        assert len(renewals) == 1  # once per query: a second time-out is the caller's answer
        assert bus._admin is not first
