"""Shared fixtures: a fresh local bus per test, and a way to wait for a condition without sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from logfactory.bus.local import LocalBus

# real Apache Kafka brokers (KRaft) for the Kafka bus tests, started on free ports
pytest_plugins = ["tests.kafka_fixtures", "tests.crash_report"]

# No per-example deadline for any Hypothesis test: on a loaded 2-core CI machine a 200 ms
# deadline fails examples that are merely slow, not wrong (speed is measured in make bench).
settings.register_profile("logfactory", deadline=None)
settings.load_profile("logfactory")


@pytest.fixture
def local_bus(tmp_path: Path) -> Iterator[LocalBus]:
    bus = LocalBus(tmp_path / "bus")
    yield bus
    bus.close()


def wait_for(
    predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` until it is truthy; fail the test with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
