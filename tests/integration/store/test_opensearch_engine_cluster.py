"""The OpenSearch engine on three nodes (3 shards, 1 replica each): a node stopped while the
store writes costs nothing, neither a record nor a duplicate, and the answers stay whole.

Uses the session's three-node cluster and leaves it green with all three running."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from tests.helpers.store_data import positions, sample_docs
from tests.helpers.store_oracle import expected_ids
from tests.opensearch_node import OpenSearchCluster

from logfactory.config.store import OpenSearchConfig
from logfactory.store.engines.opensearch import OpenSearchReader, OpenSearchWriter
from logfactory.store.query.tree import MatchAll, Query

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster(opensearch_cluster: OpenSearchCluster) -> Iterator[OpenSearchCluster]:
    yield opensearch_cluster
    for i in range(opensearch_cluster.size):
        if not opensearch_cluster.is_running(i):
            opensearch_cluster.start(i)
    opensearch_cluster.wait_status("green", 3, time.monotonic() + 120)


def test_a_node_lost_while_writing_loses_nothing(
    cluster: OpenSearchCluster, opensearch_prefix: str
) -> None:
    config = OpenSearchConfig(
        hosts=cluster.urls, index_prefix=opensearch_prefix, shards=3, replicas=1,
        bulk_docs=100, bulk_retries=8,
    )  # fmt: skip
    docs = sample_docs(900, seed=21, days=2)
    writer = OpenSearchWriter(config, max_age_s=30 * 86_400, max_size=0)
    reader = OpenSearchReader(config)
    try:
        assert writer.add(positions(docs[:300])) == 300
        writer.commit()
        # every replica in place first: a node stopped while they still copy its primaries
        # takes the only copy with it (red), which no writer can help
        cluster.wait_status("green", 3, time.monotonic() + 120)
        cluster.stop(2)
        # the client finds the two nodes left; the replicas of the lost node's shards take over
        assert writer.add(positions(docs[200:600])) == 300  # 100 of them already held
        writer.commit()
        cluster.start(2)
        cluster.wait_status("green", 3, time.monotonic() + 120)
        assert writer.add(positions(docs[600:])) == 300
        writer.commit()
        query = Query(MatchAll())
        scanned = [d.id for d in reader.scan(query, cap=10_000, timeout_s=60)]
        assert scanned == expected_ids(query, docs)
        assert reader.count(query) == 900
    finally:
        writer.close()
        reader.close()
