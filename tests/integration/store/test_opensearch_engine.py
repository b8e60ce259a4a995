"""The OpenSearch engine against a real node: round trip, idempotent replay, pagination, a type
conflict in decoded fields, retention of daily indices, what the index holds.

The contract suite (tests/contract/test_store_engines.py) compares query answers with the
embedded engine and the oracle; these tests cover what only this engine has."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import pytest
from opensearchpy import OpenSearch
from tests.helpers.store_data import DAY_NS, SAMPLE_START_NS, positions, sample_docs
from tests.helpers.store_oracle import expected_ids

from logfactory.config.store import OpenSearchConfig
from logfactory.store.document import StoredDoc
from logfactory.store.engine import Cursor
from logfactory.store.engines.opensearch import OpenSearchReader, OpenSearchWriter
from logfactory.store.query.tree import MatchAll, Prefix, Query, Range, Term, Word

pytestmark = pytest.mark.integration


@pytest.fixture
def config(opensearch_node: str, opensearch_prefix: str) -> OpenSearchConfig:
    return OpenSearchConfig(hosts=[opensearch_node], index_prefix=opensearch_prefix, bulk_docs=97)


@pytest.fixture
def writer(config: OpenSearchConfig) -> Iterator[OpenSearchWriter]:
    w = OpenSearchWriter(config, max_age_s=30 * 86_400, max_size=0)
    yield w
    w.close()


@pytest.fixture
def reader(config: OpenSearchConfig) -> Iterator[OpenSearchReader]:
    r = OpenSearchReader(config)
    yield r
    r.close()


def _all_ids(reader: OpenSearchReader) -> list[str]:
    return [doc.id for doc in reader.scan(Query(MatchAll()), cap=100_000, timeout_s=60)]


def test_round_trip_keeps_every_document_as_written(
    writer: OpenSearchWriter, reader: OpenSearchReader
) -> None:
    docs = sample_docs(300, seed=1, days=2)
    assert writer.add(positions(docs)) == 300
    writer.commit()
    back = {doc.id: doc for doc in reader.scan(Query(MatchAll()), cap=1000, timeout_s=60)}
    assert back == {doc.id: doc for doc in docs}  # every column, fields with their types
    assert _all_ids(reader) == expected_ids(Query(MatchAll()), docs)


def test_replay_stores_nothing_twice(writer: OpenSearchWriter, reader: OpenSearchReader) -> None:
    docs = sample_docs(200, seed=2)
    assert writer.add(positions(docs)) == 200
    writer.commit()
    # the same batch again (a crash between the engine's commit and the bus's), and a batch
    # holding one id twice
    assert writer.add(positions(docs)) == 0
    assert writer.add(positions([docs[0], docs[0]])) == 0
    writer.commit()
    assert reader.count(Query(MatchAll())) == 200
    assert writer.stats().docs == 200


def test_pages_follow_each_other_without_gaps_or_repeats(
    writer: OpenSearchWriter, reader: OpenSearchReader
) -> None:
    docs = sample_docs(250, seed=3)
    writer.add(positions(docs))
    writer.commit()
    query = Query(Word("for"))
    want = expected_ids(query, docs)
    got: list[str] = []
    cursor: Cursor | None = None
    while True:
        page = reader.search(query, 17, cursor)
        assert page.total == len(want)
        got.extend(doc.id for doc in page.hits)
        if page.next is None:
            break
        cursor = Cursor.decode(page.next.encode())  # as a client hands it back
    assert got == want
    assert len(want) > 17 * 2  # the query really spans pages


def test_a_field_number_here_and_text_there_loses_no_record(
    config: OpenSearchConfig, reader: OpenSearchReader
) -> None:
    # no retries at all: storing a refused document again unindexed is not a retry
    writer = OpenSearchWriter(
        msgspec.structs.replace(config, bulk_retries=0), max_age_s=86_400, max_size=0
    )
    base = SAMPLE_START_NS
    docs = [
        StoredDoc("a", "log", base + 1, base + 1, "h", "s", "one", fields={"size": 42}),
        StoredDoc("b", "log", base + 2, base + 2, "h", "s", "two", fields={"size": "big"}),
        StoredDoc("c", "log", base + 3, base + 3, "h", "s", "three", fields={"size": 7.5}),
        # an object where others have a value: OpenSearch refuses its decoded fields
        StoredDoc("d", "log", base + 4, base + 4, "h", "s", "four", fields={"size": {"x": 1}}),
    ]
    for doc in docs:  # one by one, so the mapping is fixed before the clash
        assert writer.add([(("logs.parsed", 0, 0), doc)]) == 1
    writer.close()
    assert sorted(_all_ids(reader)) == ["a", "b", "c", "d"]
    assert reader.context("d", 0, 0) is not None
    assert reader.context("d", 0, 0).anchor == docs[3]  # type: ignore[union-attr]
    found = reader.search(Query(Term("fields.size", "big")), 10).hits
    assert [doc.id for doc in found] == ["b"]
    ranged = reader.search(Query(Range("fields.size", lower=5)), 10).hits
    assert [doc.id for doc in ranged] == ["c", "a"]
    assert [d.id for d in reader.search(Query(Prefix("4", "fields.size")), 10).hits] == []
    assert reader.search(Query(Word("four")), 10).hits == [docs[3]]  # its message still found


def test_documents_go_to_the_index_of_their_day_of_arrival(
    writer: OpenSearchWriter, config: OpenSearchConfig
) -> None:
    day0 = SAMPLE_START_NS
    late = StoredDoc("late", "log", day0 + DAY_NS - 10, day0 + DAY_NS + 5, "h", "s", "m")
    event = StoredDoc("ev", "event", day0 + 10, day0 + 10, "h", "s", "m", type="oom_kill")
    writer.add([(("x", 0, 0), late), (("x", 0, 1), event)])
    writer.commit()
    client = OpenSearch(hosts=config.hosts)
    try:
        names = sorted(client.indices.get(index=f"{config.index_prefix}-*"))
        mapping = client.indices.get_mapping(index=f"{config.index_prefix}-logs-*")
    finally:
        client.close()
    prefix = config.index_prefix
    assert names == [f"{prefix}-events-2026.03.01", f"{prefix}-logs-2026.03.02"]
    props = next(iter(mapping.values()))["mappings"]["properties"]
    assert props["host"]["type"] == "keyword"
    assert props["time"]["type"] == "long"
    assert props["message"]["analyzer"] == "lf_words"


def test_retention_drops_old_days_then_the_oldest_over_the_size(
    config: OpenSearchConfig, reader: OpenSearchReader
) -> None:
    docs = sample_docs(400, seed=4, days=4)
    writer = OpenSearchWriter(config, max_age_s=2 * 86_400, max_size=0)
    try:
        writer.add(positions(docs))
        writer.commit()
        days_before = writer.stats().partitions
        assert days_before == 4
        now = SAMPLE_START_NS + 4 * DAY_NS  # the end of the fourth day
        report = writer.apply_retention(now)
        # days 1 and 2 ended at least two days before now; days 3 and 4 did not
        gone_days = {name.rsplit("-", 1)[1] for name in report.dropped_partitions}
        assert gone_days == {"2026.03.01", "2026.03.02"}
        kept = [d for d in docs if d.received >= SAMPLE_START_NS + 2 * DAY_NS]
        assert report.dropped_docs == len(docs) - len(kept)
        assert sorted(_all_ids(reader)) == sorted(d.id for d in kept)
        assert writer.apply_retention(now) == type(report)()  # nothing more to drop
    finally:
        writer.close()
    sized = OpenSearchWriter(config, max_age_s=30 * 86_400, max_size=1)
    try:
        report = sized.apply_retention(now)
        # over any size: every day but the newest goes
        assert {name.rsplit("-", 1)[1] for name in report.dropped_partitions} == {"2026.03.03"}
        assert report.bytes_freed > 0
        newest = [d for d in docs if d.received >= SAMPLE_START_NS + 3 * DAY_NS]
        assert sorted(_all_ids(reader)) == sorted(d.id for d in newest)
    finally:
        sized.close()


def test_stats_count_documents_days_and_the_time_span(
    writer: OpenSearchWriter, reader: OpenSearchReader
) -> None:
    empty = reader.stats()
    assert (empty.docs, empty.partitions, empty.oldest, empty.newest) == (0, 0, None, None)
    docs = sample_docs(120, seed=5, days=3)
    writer.add(positions(docs))
    writer.commit()
    stats = reader.stats()
    assert stats.docs == 120
    assert stats.partitions == len({d.received // DAY_NS for d in docs})
    assert stats.oldest == min(d.time for d in docs)
    assert stats.newest == max(d.time for d in docs)
    assert stats.bytes > 0


def test_huge_values_are_kept_though_not_indexed(
    writer: OpenSearchWriter, reader: OpenSearchReader
) -> None:
    """Past Lucene's 32,766-byte term a value would be refused: it is kept, unindexed."""
    huge = "é" * 20_000  # 40,000 bytes
    doc = StoredDoc(
        "huge", "log", SAMPLE_START_NS, SAMPLE_START_NS, huge, "s", "a huge host",
        fields={"blob": huge, "port": 1},
    )  # fmt: skip
    assert writer.add([(("logs.parsed", 0, 0), doc)]) == 1
    writer.commit()
    assert reader.search(Query(Word("huge")), 10).hits == [doc]
    assert reader.search(Query(Term("fields.port", "1")), 10).hits == [doc]


def test_decoded_texts_that_look_like_dates_or_numbers_stay_text(
    config: OpenSearchConfig, reader: OpenSearchReader
) -> None:
    """The sce logs of the demo: a first ``time`` in ISO form must not make the field a date
    that refuses the next one's ``2025-11-01 08:23:58`` (nor "22" a number)."""
    writer = OpenSearchWriter(
        msgspec.structs.replace(config, bulk_retries=0), max_age_s=86_400, max_size=0
    )
    base = SAMPLE_START_NS
    times = ["2025-11-01T08:23:57Z", "2025-11-01 08:23:58", "2025/11/01", "08:23:59", "22"]
    docs = [
        StoredDoc(f"t{i}", "log", base + i, base + i, "h", "sce", "job", fields={"time": t})
        for i, t in enumerate(times)
    ]
    for doc in docs:  # one by one: the first fixes the field's mapping
        assert writer.add([(("logs.parsed", 0, 0), doc)]) == 1
    writer.close()
    for doc, value in zip(docs, times, strict=True):
        assert reader.search(Query(Term("fields.time", value)), 10).hits == [doc]
    assert [d.id for d in reader.search(Query(Prefix("2025-11", "fields.time")), 10).hits] == [
        "t1",
        "t0",
    ]
    client = OpenSearch(hosts=config.hosts)
    try:
        mapping = client.indices.get_mapping(index=f"{config.index_prefix}-logs-*")
        unindexed = client.count(
            index=f"{config.index_prefix}-logs-*", body={"query": {"term": {"unindexed": True}}}
        )
    finally:
        client.close()
    props = next(iter(mapping.values()))["mappings"]["properties"]
    assert props["f"]["properties"]["time"]["type"] == "keyword"
    assert "properties" not in props["s"]  # texts only: their prefixes are read from f
    assert unindexed["count"] == 0  # none was refused and stored without its fields
