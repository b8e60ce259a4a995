"""Pytest fixtures for real OpenSearch nodes; registered via ``pytest_plugins``.

``opensearch_node`` (session): the URL of one single-node OpenSearch on free ports in a temp dir,
shared by every test that asks for it, so tests must use their own index names or prefixes
(``opensearch_prefix`` helps). ``opensearch_single`` is that node's :class:`OpenSearchCluster`,
for tests that need its log or ``stop(0)``/``start(0)`` (and must leave it running).
``opensearch_cluster`` (session): three nodes, green; tests that stop, kill or restart nodes must
leave all three running again. Nodes are only started when a test asks for them, so a run that
selects no OpenSearch test never needs Java or Maven. Each start takes ~5-20 s on two cores.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.opensearch_node import TEST_JVM_OPTS, OpenSearchCluster, launch


def _start(tmp: Path, size: int) -> OpenSearchCluster:
    t0 = time.monotonic()
    cluster = launch(tmp, size, jvm_opts=TEST_JVM_OPTS)
    print(
        f"\nOpenSearch x{size} ready on {','.join(cluster.urls)} in {time.monotonic() - t0:.1f} s"
    )
    return cluster


@pytest.fixture(scope="session")
def opensearch_single(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenSearchCluster]:
    """The single node itself: ``.url``, ``.nodes[0].log``, ``.stop(0)``, ``.start(0)``."""
    cluster = _start(tmp_path_factory.mktemp("opensearch-single"), 1)
    try:
        yield cluster
    finally:
        cluster.stop_all(timeout=5.0)  # throwaway data: no need to wait for a clean shutdown


@pytest.fixture(scope="session")
def opensearch_node(opensearch_single: OpenSearchCluster) -> str:
    """``http://127.0.0.1:PORT`` of the shared single node (plain HTTP, no authentication)."""
    return opensearch_single.url


@pytest.fixture(scope="session")
def opensearch_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenSearchCluster]:
    """Three nodes, green: ``.urls``, ``.stop(i)``, ``.kill(i)``, ``.start(i)`` (i = 0..2),
    ``.wait_status(status, nodes, deadline)``."""
    cluster = _start(tmp_path_factory.mktemp("opensearch-cluster"), 3)
    try:
        yield cluster
    finally:
        cluster.stop_all(timeout=5.0)


@pytest.fixture
def opensearch_prefix() -> str:
    """An index name prefix no other test uses (the nodes are shared across the session)."""
    return f"t-{uuid.uuid4().hex[:12]}"
