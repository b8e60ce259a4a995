"""The bus under test. Every contract test runs once per implementation listed in ``BUSES``.

Adding Kafka is a one-fixture change: write a ``KafkaFactory`` with the three methods of
:class:`BusFactory` (a fresh bus = the test cluster with unique names; ``another`` = a new
client on it; ``child_spec`` = bootstrap servers for :func:`helpers_child.open_bus`), add
``"kafka"`` to ``BUSES`` and a branch in :func:`bus_factory`.

Tests use unique topic and group names (fixture ``names``) so that one long-lived broker can
serve them all; nothing here may assume that a bus starts empty except through those names.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from tests.contract.helpers_child import open_bus

from logfactory.bus.base import Bus, Consumer, Message, partition_for_key

BUSES = ["local", "kafka"]
HELPER = Path(__file__).with_name("helpers_child.py")


class BusFactory(Protocol):
    kind: str

    def __call__(self, *, session_timeout_ms: int = 10_000) -> Bus:
        """A handle on a fresh bus. ``session_timeout_ms``: a member that neither polls nor
        commits for this long loses its partitions (Kafka: ``max.poll.interval.ms``)."""

    def another(self, bus: Bus) -> Bus:
        """A second, independent handle on the same bus, as another process would open."""

    def child_spec(self, bus: Bus) -> str:
        """What a subprocess passes to ``helpers_child.open_bus`` to reach the same bus."""


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


# -- subprocesses ---------------------------------------------------------------------------
class Child:
    """A helper process with line-based readiness signals on stdout."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HELPER), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.stderr = ""
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def line(self, timeout: float = 20.0) -> str:
        """The next line the child prints; fails the test if it exits or stays silent."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"child silent for {timeout}s: {self.proc.args!r}") from None
        if line is None:
            self.proc.wait()
            raise AssertionError(f"child exited {self.proc.returncode}: {self._err()}")
        return line

    def expect(self, wanted: str, timeout: float = 20.0) -> None:
        got = self.line(timeout)
        assert got == wanted, f"child said {got!r}, expected {wanted!r}"

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def kill(self, reap: bool = True) -> None:
        """SIGKILL: no cleanup runs in the child. ``reap`` collects the zombie."""
        os.kill(self.proc.pid, signal.SIGKILL)
        if reap:
            self.proc.wait(timeout=10)

    def finish(self, timeout: float = 30.0) -> str:
        """Wait for a clean exit; returns stderr (which the caller may inspect)."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        self.proc.wait(timeout=timeout)
        err = self._err()
        assert self.proc.returncode == 0, f"child exited {self.proc.returncode}: {err}"
        return err

    def _err(self) -> str:
        if self.proc.stderr is not None and not self.proc.stderr.closed:
            self.stderr = self.proc.stderr.read()
            self.proc.stderr.close()
        return self.stderr


@pytest.fixture
def spawn() -> Iterator[Callable[..., Child]]:
    """Start ``helpers_child.py`` commands; whatever is still running at teardown is killed."""
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


# -- reading --------------------------------------------------------------------------------
def drain(consumer: Consumer, count: int, timeout: float = 20.0, batch: int = 500) -> list[Message]:
    """Poll until ``count`` messages arrived (fails after ``timeout`` seconds)."""
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(out) < count:
        assert time.monotonic() < deadline, f"got {len(out)} of {count} messages in {timeout}s"
        out += consumer.poll(min(batch, count - len(out)), timeout=0.2)
    return out


def read_all(bus: Bus, topic: str) -> list[Message]:
    """Every message stored in ``topic`` now, through a group-less consumer."""
    ends = {p: high for p, (_low, high) in bus.watermarks(topic).items()}
    consumer = bus.consumer(None, [topic], "earliest")
    try:
        out: list[Message] = []
        while any(consumer.position().get((topic, p), 0) < end for p, end in ends.items()):
            before = consumer.position()
            batch = consumer.poll(5000, timeout=5.0)
            # a poll may return nothing but step over transaction markers (Kafka), which
            # occupy offsets without being messages: that is progress, not a stall
            assert batch or consumer.position() != before, (
                f"{topic}: stalled at {consumer.position()} before {ends}"
            )
            out += [m for m in batch if m.offset < ends[m.partition]]
        return out
    finally:
        consumer.close()


def key_for(partition: int, partitions: int, prefix: str = "key") -> bytes:
    """A key that lands in ``partition`` (buses must place keys by ``partition_for_key``)."""
    return next(
        key
        for i in range(10_000)
        if partition_for_key(key := f"{prefix}{i}".encode(), partitions) == partition
    )
