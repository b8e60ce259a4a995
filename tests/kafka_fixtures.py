"""Pytest fixtures for a real Kafka broker (KRaft); registered via ``pytest_plugins``.

``kafka_bootstrap`` (session): one single-node broker on free ports in a temp dir, shared by every
test that asks for it, so tests must use their own topic and group names (``kafka_topic`` helps).
``kafka_cluster`` (session): three combined broker+controller nodes, replication factor 3 and
min ISR 2 by default; tests that stop, kill or restart nodes must leave all three running again
(``cluster.start(i)`` waits until the node serves). ``make_kafka`` gives a test brokers of its
own, for outages that would disturb the shared ones. Brokers are only started when a test asks
for them, so a run that selects no Kafka test never needs Java or Maven.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.kafka_broker import KafkaCluster, launch


def _start(tmp: Path, size: int) -> KafkaCluster:
    t0 = time.monotonic()
    cluster = launch(tmp, size)
    print(f"\nKafka x{size} ready on {cluster.bootstrap} in {time.monotonic() - t0:.1f} s")
    return cluster


@pytest.fixture(scope="session")
def kafka_single(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """The single-node broker itself, for tests that need its ports, logs or ``stop(0)``."""
    cluster = _start(tmp_path_factory.mktemp("kafka-single"), 1)
    try:
        yield cluster
    finally:
        cluster.stop_all(timeout=3.0)  # throwaway data: no need to wait for a clean shutdown


SHARED_PARTITIONS = 4
"""The partition count of the node's fixed topics (``logs.raw``, ``logs.parsed``, ...) on the
shared broker: Kafka cannot change a topic's count, so every test that runs a node's topics on
``kafka_bootstrap`` configures this one (a test needing another count starts its own broker
with ``make_kafka``)."""


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_single: KafkaCluster) -> str:
    """``bootstrap.servers`` of the shared single-node broker (node topics: see
    :data:`SHARED_PARTITIONS`)."""
    return kafka_single.bootstrap


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """Three KRaft nodes; ``.bootstrap``, ``.stop(i)``, ``.kill(i)``, ``.start(i)`` (i = 0..2)."""
    cluster = _start(tmp_path_factory.mktemp("kafka-cluster"), 3)
    try:
        yield cluster
    finally:
        cluster.stop_all(timeout=3.0)  # throwaway data: no need to wait for a clean shutdown


@pytest.fixture
def make_kafka(tmp_path: Path) -> Iterator[Callable[[int], KafkaCluster]]:
    """``make_kafka(size)``: private nodes for a test that takes every broker down (outages).

    Each call starts a new cluster of ``size`` nodes on free ports; all are stopped when the test
    ends. Costs a broker start-up per call, so use the shared fixtures wherever possible.
    """
    started: list[KafkaCluster] = []

    def make(size: int = 1) -> KafkaCluster:
        cluster = _start(tmp_path / f"kafka{len(started)}", size)
        started.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in started:
            cluster.stop_all(timeout=3.0)


@pytest.fixture
def kafka_topic() -> str:
    """A topic name no other test uses (the brokers are shared across the session)."""
    return f"t-{uuid.uuid4().hex[:12]}"
