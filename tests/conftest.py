"""Shared fixtures: a fresh local bus per test (also with logs.raw made), the collector agents a
test started; the Kafka brokers, the OpenSearch nodes and the crash report as plugins.

Helpers that are not fixtures (``wait_for`` and the rest) live in tests/helpers/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from tests.helpers.agent import AgentRunner

from logfactory.bus.base import TopicSpec
from logfactory.bus.local import LocalBus
from logfactory.collect.agent import RAW_TOPIC

# real Apache Kafka brokers (KRaft) for the Kafka bus tests and real OpenSearch nodes for the
# OpenSearch store engine, started on free ports when a test asks for them
pytest_plugins = ["tests.kafka_fixtures", "tests.opensearch_fixtures", "tests.crash_report"]

# No per-example deadline for any Hypothesis test: on a loaded 2-core CI machine a 200 ms
# deadline fails examples that are merely slow, not wrong (speed is measured in make bench).
settings.register_profile("logfactory", deadline=None)
settings.load_profile("logfactory")


@pytest.fixture
def local_bus(tmp_path: Path) -> Iterator[LocalBus]:
    bus = LocalBus(tmp_path / "bus")
    yield bus
    bus.close()


@pytest.fixture
def bus(local_bus: LocalBus) -> LocalBus:
    """The local bus with ``logs.raw`` made, as a node makes it before its collectors start."""
    local_bus.ensure_topic(TopicSpec(RAW_TOPIC, 4))
    return local_bus


@pytest.fixture
def runners(local_bus: LocalBus) -> Iterator[list[AgentRunner]]:
    """The collector agents a test started (tests/helpers/agent.py); those still running are
    stopped at teardown, before the bus they write to closes."""
    started: list[AgentRunner] = []
    yield started
    for r in started:
        if r.alive():
            r.stop()
