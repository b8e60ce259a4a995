"""Documents OpenSearch will never take as they are must not hold the store back: an id over
512 bytes (refused with the whole bulk request) is written under a digest of it and reads back
whole; a document refused for good (an id beyond Lucene's 32,766-byte term) is reported by the
writer and becomes a dead letter with the reason, while the rest of its batch is stored and
the offsets move on."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import msgspec
import pytest
from tests.helpers.bus import read_all
from tests.helpers.store_feed import bus_of, feed, recent_docs, store_config
from tests.helpers.waiting import wait_for

from logfactory.config.store import OpenSearchConfig
from logfactory.stats import StatsRegistry
from logfactory.store.engines.opensearch import OpenSearchReader, OpenSearchWriter
from logfactory.store.engines.opensearch.writer import bulk_id
from logfactory.store.open import open_reader
from logfactory.store.query.tree import MatchAll, Query, Term
from logfactory.store.role import STAGE
from logfactory.store.runner import run_store_resilient
from logfactory.topics import DEADLETTER, PARSED

pytestmark = pytest.mark.integration

LONG_ID = "logs.raw/0/" + "7" * 600  # over 512 bytes: not an _id OpenSearch takes
IMMENSE_ID = "z" * 40_000  # over Lucene's term limit: not a keyword OpenSearch takes


def test_a_long_id_is_stored_and_an_impossible_document_is_reported_not_retried(
    opensearch_node: str, opensearch_prefix: str
) -> None:
    config = OpenSearchConfig(hosts=[opensearch_node], index_prefix=opensearch_prefix)
    writer = OpenSearchWriter(config, max_age_s=30 * 86_400, max_size=0)
    reader = OpenSearchReader(config)
    try:
        base = recent_docs(1)[0]
        ok = msgspec.structs.replace(base, id="ok")
        long = msgspec.structs.replace(base, id=LONG_ID, time=base.time + 1)
        immense = msgspec.structs.replace(base, id=IMMENSE_ID, time=base.time + 2)
        batch = [(("logs.parsed", 0, i), doc) for i, doc in enumerate((ok, long, immense))]
        assert writer.add(batch) == 2
        refused = writer.take_refused()
        assert [position for position, _ in refused] == [("logs.parsed", 0, 2)]
        assert "refused" in refused[0][1]
        assert "id" in refused[0][1]
        assert writer.take_refused() == []  # reported once
        assert writer.add(batch[:2]) == 0  # a replay overwrites: the digest is stable
        writer.commit()
        assert bulk_id(LONG_ID) != LONG_ID
        assert bulk_id("ok") == "ok"
        back = reader.search(Query(MatchAll()), 10).hits
        assert [doc.id for doc in back] == [LONG_ID, "ok"]
        assert back[0] == long
        assert reader.search(Query(Term("id", LONG_ID)), 10).hits == [long]
        context = reader.context(LONG_ID, 1, 1)
        assert context is not None
        assert context.anchor == long
    finally:
        writer.close()
        reader.close()


def test_the_role_dead_letters_a_refused_record_and_stores_the_rest(
    tmp_path: Path, opensearch_node: str, opensearch_prefix: str
) -> None:
    config = store_config(
        tmp_path,
        engine="opensearch",
        opensearch={"hosts": [opensearch_node], "index_prefix": opensearch_prefix},
    )
    docs = [d for d in recent_docs(200, seed=3) if d.kind == "log"]
    docs[50] = msgspec.structs.replace(docs[50], id=IMMENSE_ID)
    bus = bus_of(config)
    stop = threading.Event()
    registry = StatsRegistry("store-test")
    thread = threading.Thread(
        target=run_store_resilient, args=(config, registry, stop), daemon=True
    )
    try:
        feed(bus, docs)
        thread.start()
        total = sum(hi for _lo, hi in bus.watermarks(PARSED).values())
        wait_for(
            lambda: sum(bus.committed(config.store.group, PARSED).values()) >= total,
            90,
            "the store to commit every record",
        )
        letters = [json.loads(m.value) for m in read_all(bus, DEADLETTER)]
    finally:
        stop.set()
        thread.join(60)
        bus.close()
    assert not thread.is_alive()
    assert len(letters) == 1
    assert letters[0]["stage"] == STAGE
    assert "OpenSearch refused it" in letters[0]["reason"]
    assert letters[0]["position"].startswith(f"{PARSED}/")
    counters = dict(registry.snapshot()["counters"]["store"])
    assert counters["deadletters"] == 1
    assert counters["stored"] == len(docs) - 1
    assert counters.get("duplicates", 0) == 0
    reader = open_reader(config)
    try:
        stored = {doc.id for doc in reader.scan(Query(MatchAll()), cap=1000, timeout_s=60)}
    finally:
        reader.close()
    assert stored == {d.id for d in docs if d.id != IMMENSE_ID}
