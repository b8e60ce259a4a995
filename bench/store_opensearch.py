"""Store ingest into one OpenSearch node: started from the project's files, warmed up, measured.

The node is the one the tests use (``tests/opensearch_node.py``: OpenSearch 2.19.6 from Maven
Central jars, one JVM, 512 MiB heap) on free ports in a scratch directory. A fresh JVM
indexes about a third as fast as a warm one (its JIT has not compiled the bulk path yet:
measured, the node's CPU a document fell from 270 us over the first 64,000 documents to 90 us
after about 250,000), so three batches of documents (~190,000) are written through the
``OpenSearchWriter`` into a throwaway index prefix first; then the same measurement as the
embedded engine's (:func:`bench.store_ingest.ingest_run`) with ``engine: opensearch``.

When the engine or the node is not available (not built here, no Java, the jars not
fetched), the result says ``measured: false`` and why, rather than failing the benchmark.
"""

from __future__ import annotations

import importlib
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import free_port
from bench.store_data import BatchMaker, to_docs
from bench.store_ingest import StoreBus, ingest_run
from logfactory.config.store import OpenSearchConfig

__all__ = ["opensearch_ingest"]

SECTION = """store:
  engine: opensearch
  group: store-opensearch
  retention: {{max_age: 3650d}}
  opensearch:
    hosts: [{url}]
    index_prefix: bench
    replicas: 0
"""
WARMUP_BATCHES = (1, 2, 3)
CHUNK = 5000


def _warm_up(url: str) -> dict[str, Any]:
    engine = importlib.import_module("logfactory.store.engines.opensearch")
    maker = BatchMaker()
    try:
        docs = [doc for k in WARMUP_BATCHES for doc in to_docs(maker.make(k).messages, {})]
    finally:
        maker.close()
    config = OpenSearchConfig(hosts=[url], index_prefix="warmup", replicas=0)
    writer = engine.OpenSearchWriter(config, max_age_s=3650 * 86_400.0, max_size=0)
    t0 = time.perf_counter()
    try:
        for i in range(0, len(docs), CHUNK):
            writer.add(docs[i : i + CHUNK])
            writer.commit()
    finally:
        writer.close()
    seconds = time.perf_counter() - t0
    return {"docs": len(docs), "seconds": round(seconds, 2), "per_s": round(len(docs) / seconds)}


def opensearch_ingest(bus: StoreBus, target: float) -> dict[str, Any]:
    try:
        importlib.import_module("logfactory.store.engines.opensearch")
        node = importlib.import_module("tests.opensearch_node")
    except ImportError as exc:
        return {"measured": False, "why": f"the OpenSearch engine or its node is missing: {exc}"}
    with tempfile.TemporaryDirectory(prefix="store-bench-os-") as tmp:
        cluster = node.OpenSearchCluster(Path(tmp), [(free_port(), free_port())])
        try:
            node.ensure_jars()
            cluster.start_all(wait=True)
        except (node.OpenSearchStartError, OSError) as exc:
            cluster.stop_all()
            return {"measured": False, "why": f"no OpenSearch node could start: {exc}"}
        try:
            warm = _warm_up(cluster.url)
            result = ingest_run(bus, "opensearch", SECTION.format(url=cluster.url))
        finally:
            cluster.stop_all()
    return {
        "measured": True,
        "node": "OpenSearch 2.19.6, one node, heap 512 MiB (tests/opensearch_node.py)",
        "warm_up": warm,
        **result,
        "meets_target": result["rate_steady_per_s"] >= target,
    }
