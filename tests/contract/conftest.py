"""The bus under test. Every contract test runs once per implementation listed in ``BUSES``.

Adding Kafka is a one-fixture change: write a ``KafkaFactory`` with the three methods of
:class:`BusFactory` (a fresh bus = the test cluster with unique names; ``another`` = a new
client on it; ``child_spec`` = bootstrap servers for :func:`tests.helpers.bus_child.open_bus`), add
``"kafka"`` to ``BUSES`` and a branch in :func:`bus_factory`.

Tests use unique topic and group names (fixture ``names``) so that one long-lived broker can
serve them all; nothing here may assume that a bus starts empty except through those names.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.bus_child import open_bus
from tests.helpers.contract import BusFactory, Child

from logfactory.bus.base import Bus

BUSES = ["local", "kafka"]


class LocalFactory:
    kind = "local"

    def __init__(self, root: Path) -> None:
        self._root = root
        self._specs: dict[int, dict[str, Any]] = {}
        self._handles: list[Bus] = []

    def __call__(self, *, session_timeout_ms: int = 10_000) -> Bus:
        directory = self._root / f"bus{len(self._specs)}"
        spec: dict[str, Any] = {"kind": "local", "directory": str(directory)}
        spec["session_timeout_ms"] = session_timeout_ms
        return self._open(spec)

    def _open(self, spec: dict[str, Any]) -> Bus:
        bus = open_bus(json.dumps(spec))
        self._specs[id(bus)] = spec
        self._handles.append(bus)
        return bus

    def another(self, bus: Bus) -> Bus:
        return self._open(self._specs[id(bus)])

    def child_spec(self, bus: Bus) -> str:
        return json.dumps(self._specs[id(bus)])

    def close(self) -> None:
        for bus in self._handles:
            bus.close()


class KafkaFactory(LocalFactory):
    """Handles on the test broker. A "fresh bus" is the same cluster: tests use unique names.

    ``session_timeout_ms`` is how long a member may go without polling
    (``max.poll.interval.ms``); a *dead* member is noticed after the (short) heartbeat session
    timeout, as a killed process is on the local bus by its pid.
    """

    kind = "kafka"

    def __init__(self, bootstrap: str) -> None:
        super().__init__(Path())
        self._bootstrap = bootstrap

    def __call__(self, *, session_timeout_ms: int = 10_000) -> Bus:
        # Kafka notices a member that stopped polling only through max.poll.interval.ms, and
        # a rebalance waits that long for it; below ~3 s, a slow heartbeat or an admin call
        # between two polls on this 2-core test machine would make live members look stalled.
        max_poll = max(session_timeout_ms, 3_000)
        config = {
            "max.poll.interval.ms": max_poll,
            "session.timeout.ms": 3_000,
            "heartbeat.interval.ms": 500,
        }
        spec: dict[str, Any] = {"kind": "kafka", "bootstrap": self._bootstrap, "config": config}
        return self._open(spec)

    def child_spec(self, bus: Bus) -> str:
        # a stable transactional id: a restarted child aborts its killed predecessor's
        # open transaction at once (children of one bus never run transactions concurrently)
        spec = {**self._specs[id(bus)], "transactional_id": f"child-{uuid.uuid4().hex}"}
        return json.dumps(spec)


def _kafka_bootstrap(request: pytest.FixtureRequest) -> str:
    """The test broker: ``LOGFACTORY_TEST_KAFKA`` if set, else the ``kafka_bootstrap`` fixture
    (tests/kafka_fixtures.py starts a single-node broker for the session)."""
    return os.environ.get("LOGFACTORY_TEST_KAFKA") or str(
        request.getfixturevalue("kafka_bootstrap")
    )


@pytest.fixture(params=BUSES)
def bus_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BusFactory]:
    factory: LocalFactory
    if request.param == "local":
        factory = LocalFactory(tmp_path)
    elif request.param == "kafka":
        factory = KafkaFactory(_kafka_bootstrap(request))
    else:  # pragma: no cover - a new bus needs a factory here
        raise AssertionError(f"no factory for bus {request.param!r}")
    yield factory
    factory.close()


@pytest.fixture
def names() -> Callable[[str], str]:
    """Unique topic/group names: ``names("in")`` -> ``in-3f9a...``."""
    run = uuid.uuid4().hex[:8]
    return lambda base: f"{base}-{run}"


@pytest.fixture
def spawn() -> Iterator[Callable[..., Child]]:
    """Start ``bus_child.py`` commands (tests/helpers/); what still runs at teardown is killed."""
    children: list[Child] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Child:
        child = Child(list(args), env)
        children.append(child)
        return child

    yield start
    for child in children:
        if child.proc.poll() is None:
            child.proc.kill()
        child.proc.wait(timeout=10)
        for stream in (child.proc.stdin, child.proc.stdout, child.proc.stderr):
            if stream is not None:
                stream.close()
