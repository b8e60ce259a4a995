"""The OpenSearch nodes the project starts from its own files (tests/opensearch_node.py).

One node answers, binds loopback only, and indexes and finds a document; three nodes go green with
an index of 3 shards and 1 replica, stay searchable (yellow, every document still there) with one
node stopped, and go green again when it returns. All through opensearch-py, the store's client.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from opensearchpy import OpenSearch
from tests.kafka_broker import free_ports
from tests.opensearch_node import (
    TEST_JVM_OPTS,
    Node,
    OpenSearchCluster,
    OpenSearchStartError,
    ensure_jars,
)

pytestmark = pytest.mark.integration

DOCS = 60


def _client(url: str) -> OpenSearch:
    return OpenSearch(hosts=[url], timeout=30)


def _health(client: OpenSearch, **params: Any) -> dict[str, Any]:
    found: dict[str, Any] = client.cluster.health(params=params)
    return found


def test_node_answers_and_says_what_it_is(opensearch_node: str) -> None:
    info = _client(opensearch_node).info()
    assert info["version"]["number"] == "2.19.6"
    assert info["version"]["distribution"] == "opensearch"
    assert info["cluster_name"] == "logfactory"


def test_node_binds_loopback_only(opensearch_single: OpenSearchCluster) -> None:
    """`network.host` defaults to `_local_`, which would also bind [::1]: only 127.0.0.1 here."""
    nodes = _client(opensearch_single.url).nodes.info(metric="http,transport")["nodes"]
    (node,) = nodes.values()
    for kind in ("http", "transport"):
        bound = node[kind]["bound_address"]
        assert bound, kind
        assert all(address.startswith("127.0.0.1:") for address in bound), (kind, bound)


def test_node_indexes_and_searches_a_document(opensearch_node: str, opensearch_prefix: str) -> None:
    client = _client(opensearch_node)
    index = f"{opensearch_prefix}-logs"
    client.indices.create(
        index=index,
        body={
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {"properties": {"message": {"type": "text"}, "host": {"type": "keyword"}}},
        },
    )
    doc = {"message": "Failed password for root from 10.0.0.7 port 22", "host": "web-1"}
    client.index(index=index, id="r-1", body=doc, refresh=True)
    client.index(index=index, id="r-2", body={"message": "session opened", "host": "web-2"},
                 refresh=True)  # fmt: skip

    hits = client.search(index=index, body={"query": {"match": {"message": "password"}}})
    assert [h["_id"] for h in hits["hits"]["hits"]] == ["r-1"]
    assert hits["hits"]["hits"][0]["_source"] == doc
    by_host = client.search(index=index, body={"query": {"term": {"host": "web-2"}}})
    assert [h["_id"] for h in by_host["hits"]["hits"]] == ["r-2"]
    assert _health(client, index=index)["status"] == "green"
    client.indices.delete(index=index)


def _count_everywhere(cluster: OpenSearchCluster, index: str, up: list[int]) -> list[int]:
    return [_client(cluster.nodes[i].url).count(index=index)["count"] for i in up]


def test_cluster_survives_one_node_stopped(
    opensearch_cluster: OpenSearchCluster, opensearch_prefix: str
) -> None:
    cluster = opensearch_cluster
    client = _client(cluster.url)
    assert _health(client)["number_of_nodes"] == 3
    index = f"{opensearch_prefix}-spread"
    # replicas of a stopped node's shards wait 5 min before being rebuilt elsewhere (default
    # 1 min), so the cluster is certainly still yellow when the test looks
    settings = {"number_of_shards": 3, "number_of_replicas": 1,
                "index.unassigned.node_left.delayed_timeout": "5m"}  # fmt: skip
    client.indices.create(index=index, body={"settings": settings})
    for n in range(DOCS):
        client.index(index=index, id=f"d{n}", body={"n": n, "message": f"event number {n}"})
    client.indices.refresh(index=index)
    green = cluster.wait_status("green", 3, time.monotonic() + 120)
    assert green["status"] == "green", green
    assert _health(client, index=index)["active_shards"] == 6  # 3 primaries + 3 replicas
    assert _count_everywhere(cluster, index, [0, 1, 2]) == [DOCS] * 3

    cluster.stop(2)
    try:
        survivor = _client(cluster.nodes[0].url)
        yellow = cluster.wait_status("yellow", 2, time.monotonic() + 120)
        assert yellow["status"] == "yellow", yellow
        assert yellow["unassigned_shards"] > 0
        assert _health(survivor, index=index)["active_primary_shards"] == 3
        assert _count_everywhere(cluster, index, [0, 1]) == [DOCS] * 2
        found = survivor.search(index=index, body={"query": {"match": {"message": "42"}}})
        assert [h["_id"] for h in found["hits"]["hits"]] == ["d42"]
    finally:
        cluster.start(2)

    back = cluster.wait_status("green", 3, time.monotonic() + 120)
    assert back["status"] == "green", back
    assert back["number_of_nodes"] == 3
    assert _count_everywhere(cluster, index, [0, 1, 2]) == [DOCS] * 3
    client.indices.delete(index=index)


class _Misconfigured(OpenSearchCluster):
    """A node given a setting OpenSearch does not know: it refuses to start."""

    def settings(self, node: Node) -> list[str]:
        return [*super().settings(node), "-Eno.such.setting=1"]


def test_a_node_that_cannot_start_is_reported_with_its_log(tmp_path: Path) -> None:
    http, transport = free_ports(2)
    cluster = _Misconfigured(tmp_path, [(http, transport)], ensure_jars(), jvm_opts=TEST_JVM_OPTS)
    with pytest.raises(OpenSearchStartError, match="OpenSearch node1 exited with 1") as failed:
        cluster.start_all(timeout=120)  # the exit is seen at once, not at this deadline
    assert "unknown setting [no.such.setting]" in str(failed.value)  # the tail of its node.log
    assert not cluster.is_running(0)
