"""The OpenSearch engine while its node is down: writes and reads say so (StoreUnavailable with
the address and the cause), a bulk retried across a restart stores everything, nothing is lost.

Uses the session's single node and stops it: each test leaves it running again."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest
from tests.helpers.store_data import positions, sample_docs
from tests.opensearch_node import OpenSearchCluster

from logfactory.config.store import OpenSearchConfig
from logfactory.errors import StoreUnavailable
from logfactory.store.engines.opensearch import OpenSearchReader, OpenSearchWriter
from logfactory.store.query.tree import MatchAll, Query

pytestmark = pytest.mark.integration


@pytest.fixture
def node(opensearch_single: OpenSearchCluster) -> Iterator[OpenSearchCluster]:
    yield opensearch_single
    if not opensearch_single.is_running(0):
        opensearch_single.start(0)


def _config(node: OpenSearchCluster, prefix: str, retries: int) -> OpenSearchConfig:
    return OpenSearchConfig(hosts=[node.url], index_prefix=prefix, bulk_retries=retries)


def _ids(reader: OpenSearchReader) -> set[str]:
    return {doc.id for doc in reader.scan(Query(MatchAll()), cap=10_000, timeout_s=60)}


def test_a_stopped_node_is_unavailable_and_the_batch_is_stored_after(
    node: OpenSearchCluster, opensearch_prefix: str
) -> None:
    config = _config(node, opensearch_prefix, retries=1)
    first, second = sample_docs(100, seed=10), sample_docs(100, seed=11)
    writer = OpenSearchWriter(config, max_age_s=30 * 86_400, max_size=0)
    reader = OpenSearchReader(config)
    writer.add(positions(first))
    writer.commit()
    node.stop(0)
    with pytest.raises(StoreUnavailable) as failed:
        writer.add(positions(second))
    assert node.url in str(failed.value)
    assert "cannot connect" in str(failed.value)
    with pytest.raises(StoreUnavailable, match="a search failed"):
        reader.search(Query(MatchAll()), 10)
    node.start(0)
    # the role retries the same batch: every document of both batches, each once
    writer.add(positions(second))
    writer.commit()
    assert _ids(reader) == {d.id for d in first + second}
    assert reader.count(Query(MatchAll())) == 200
    writer.close()
    reader.close()


def test_a_bulk_retried_across_a_restart_loses_nothing(
    node: OpenSearchCluster, opensearch_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = _config(node, opensearch_prefix, retries=12)
    docs = sample_docs(300, seed=12)
    writer = OpenSearchWriter(config, max_age_s=30 * 86_400, max_size=0)
    writer.add(positions(docs[:100]))
    writer.commit()
    node.stop(0)
    created: list[int] = []
    errors: list[BaseException] = []

    def write() -> None:
        try:
            created.append(writer.add(positions(docs)))
            writer.commit()
        except BaseException as exc:  # handed to the test's thread
            errors.append(exc)

    caplog.set_level(logging.WARNING, logger="logfactory.store.engines.opensearch.writer")
    thread = threading.Thread(target=write)
    thread.start()
    node.start(0)
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert errors == []
    assert created == [200]  # the first 100 were already held
    assert any("retry 1 of 12" in r.getMessage() for r in caplog.records)
    reader = OpenSearchReader(config)
    assert _ids(reader) == {d.id for d in docs}
    reader.close()
    writer.close()
