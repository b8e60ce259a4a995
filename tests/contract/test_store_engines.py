"""The query contract: the same documents in both engines, the same queries, the same answers.

Both engines (embedded tantivy, a real OpenSearch node) are filled through their writers with
the same :func:`sample_docs`; every query text of :data:`QUERIES` goes through the one parser
and must give exactly the oracle's hits (:mod:`tests.helpers.store_oracle`: the documented
semantics in plain Python) in the same order, page by page, with the same total. Histograms,
top values, distinct counts and context are checked against the same documents counted in
Python. Engines compared with one reference agree with each other; a difference is a bug in
an engine or in the documented semantics, never "close enough".
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.helpers.store_data import DAY_NS, SAMPLE_START_NS, positions, sample_docs
from tests.helpers.store_oracle import (
    expected_docs,
    expected_histogram,
    expected_ids,
    expected_top,
)

from logfactory.config.store import OpenSearchConfig
from logfactory.errors import QueryError
from logfactory.store.document import StoredDoc
from logfactory.store.engine import Cursor, StoreReader
from logfactory.store.engines.embedded import EmbeddedReader, EmbeddedWriter
from logfactory.store.engines.opensearch import OpenSearchReader, OpenSearchWriter
from logfactory.store.query.parser import parse_query
from logfactory.store.query.tree import (
    And,
    Exists,
    Node,
    Not,
    Or,
    Phrase,
    Prefix,
    Query,
    Range,
    Term,
    Word,
)

DAYS = 3
NOW = SAMPLE_START_NS + DAYS * DAY_NS
HOUR = 3_600 * 1_000_000_000
DOCS = sample_docs(700, seed=16, days=DAYS)

QUERIES: list[str] = [
    "*",
    "failed",
    "FAILED",
    '"failed password"',
    '"password failed"',
    "pass*",
    "Pass*",
    "10.1.15.10",
    "10.1.16*",
    "10.1.16.*",
    "/var/log/messages",
    "job_1210",
    "JobId=1044",
    "café",
    "Grüße",
    "日本語",
    "x" * 44,
    '"pam_unix(sshd:session)"',
    "publickey OR session",
    "failed AND NOT root",
    "(failed OR accepted) AND host:cn00*",
    "host:cn0001",
    "host:cn00*",
    "host:nœud7",
    "host:CN0001",
    "severity:error",
    "severity:err",
    "kind:event AND type:ssh_bruteforce",
    "subtype:xfs OR subtype:password",
    "NOT severity:info",
    "-kind:log",
    'source:"postfix/smtpd"',
    "source:app.api",
    "pattern:* AND NOT status:*",
    "workshop:hpc AND status:new",
    "port:22",
    "port:22.0",
    "port:>=443",
    "port:[400 TO 9000]",
    "ratio:<0",
    "ratio:{0.5 TO 2.0]",
    "ok:true",
    "ok:false",
    "user:jörg",
    "user:Car*",
    "user:carol",
    "job.id:1001",
    "job.queue:gpu AND job.id:>=1200",
    'req.path:"/login"',
    "note:*",
    "note:10.3.17.5",
    "addr:10.1*",
    "-user:root AND -host:cn00*",
    # query syntax of the engines themselves is only ever a value here
    '"*:* OR _exists_:host"',
    'host:"cn0001 OR *"',
    'user:"{\\"script\\": 1}"',
]
WINDOWS: list[tuple[str, str | None, str | None]] = [
    ("failed", "-2d", "-1d"),
    ("*", "-36h", None),
    ("host:cn0002 OR severity:crit", None, "-2d"),
    ("*", "2026-03-02", "2026-03-02T12:00:00Z"),
]


def _fill_embedded(root: Path, docs: list[StoredDoc]) -> StoreReader:
    writer = EmbeddedWriter(root / "store", max_age_s=365 * 86_400, max_size=0)
    for start in range(0, len(docs), 250):  # several commits, as the role makes them
        writer.add(positions(docs[start : start + 250], first=start))
        writer.commit()
    writer.close()
    return EmbeddedReader(root / "store")


def _fill_opensearch(url: str, docs: list[StoredDoc]) -> StoreReader:
    config = OpenSearchConfig(hosts=[url], index_prefix=f"c-{uuid.uuid4().hex[:10]}")
    writer = OpenSearchWriter(config, max_age_s=365 * 86_400, max_size=0)
    for start in range(0, len(docs), 250):
        writer.add(positions(docs[start : start + 250], first=start))
        writer.commit()
    writer.close()
    return OpenSearchReader(config)


@pytest.fixture(scope="module", params=["embedded", "opensearch"])
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StoreReader]:
    if request.param == "embedded":
        reader = _fill_embedded(tmp_path_factory.mktemp("contract-store"), DOCS)
    else:
        reader = _fill_opensearch(request.getfixturevalue("opensearch_node"), DOCS)
    yield reader
    reader.close()


def _all_pages(reader: StoreReader, query: Query, size: int) -> tuple[list[str], set[int | None]]:
    ids: list[str] = []
    totals: set[int | None] = set()
    cursor: Cursor | None = None
    for _ in range(len(DOCS) + 1):  # a bound: a page that never ends fails the test
        page = reader.search(query, size, cursor)
        assert not page.timed_out
        totals.add(page.total)
        ids.extend(doc.id for doc in page.hits)
        if page.next is None:
            return ids, totals
        cursor = page.next
    raise AssertionError("pages never ended")


NOTHING = {
    '"password failed"',  # the words, not in that order
    "x" * 44,  # a word too long to be indexed
    "host:CN0001",  # keyword columns are case-sensitive
    "user:carol",  # and so are decoded fields (the value is Carol)
    '"*:* OR _exists_:host"',
    'host:"cn0001 OR *"',
    'user:"{\\"script\\": 1}"',
}


def test_the_sample_exercises_what_it_claims() -> None:
    """The table is only worth its queries: each finds something, but those meant not to."""
    empty = {t for t in QUERIES if not expected_ids(parse_query(t, now_ns=NOW), DOCS)}
    assert empty == NOTHING
    assert len(expected_ids(parse_query('"failed password"', now_ns=NOW), DOCS)) > 5


@pytest.mark.parametrize("text", QUERIES)
def test_hits_are_the_oracles_in_order(engine: StoreReader, text: str) -> None:
    query = parse_query(text, now_ns=NOW)
    want = expected_ids(query, DOCS)
    ids, totals = _all_pages(engine, query, 40)
    assert ids == want
    assert totals == {len(want)}
    assert engine.count(query) == len(want)


@pytest.mark.parametrize(("text", "since", "until"), WINDOWS)
def test_time_windows(engine: StoreReader, text: str, since: str | None, until: str | None) -> None:
    query = parse_query(text, now_ns=NOW, since=since, until=until)
    want = expected_ids(query, DOCS)
    assert want, "a window that holds nothing proves little"
    assert _all_pages(engine, query, 97)[0] == want


def test_export_scan_is_every_hit_in_order_up_to_the_cap(engine: StoreReader) -> None:
    query = parse_query("NOT kind:event", now_ns=NOW)
    want = expected_ids(query, DOCS)
    assert [d.id for d in engine.scan(query, cap=10_000, timeout_s=60)] == want
    assert [d.id for d in engine.scan(query, cap=123, timeout_s=60)] == want[:123]


def test_documents_read_back_as_written(engine: StoreReader) -> None:
    query = parse_query("*", now_ns=NOW)
    back = list(engine.scan(query, cap=10_000, timeout_s=60))
    assert back == expected_docs(query, DOCS)


@pytest.mark.parametrize("text", ["*", "failed OR kind:event", "host:cn00*"])
def test_histogram_counts_every_bucket(engine: StoreReader, text: str) -> None:
    interval = HOUR
    start, end = SAMPLE_START_NS + 5 * HOUR + 17, NOW - HOUR // 2
    query = parse_query(text, now_ns=NOW)
    query = Query(query.where, start, end, text)
    got = engine.histogram(query, interval)
    assert got.interval == interval
    assert not got.timed_out
    assert [(b.key, b.count) for b in got.buckets] == expected_histogram(query, DOCS, interval)
    assert got.buckets[0].key == start - start % interval


@pytest.mark.parametrize(
    ("field", "text", "size"),
    [
        ("host", "*", 5),
        ("severity", "NOT kind:event", 5),
        ("pattern", "failed", 5),
        ("type", "*", 5),
        # decoded fields: numbers and text that spell the same are one value
        ("fields.user", "user:*", 3),
        ("fields.port", "*", 3),
        ("fields.ratio", "NOT kind:event", 3),
        ("fields.ok", "*", 3),
        ("fields.job.queue", "*", 1),
    ],
)
def test_top_values_by_count_then_value(
    engine: StoreReader, field: str, text: str, size: int
) -> None:
    query = parse_query(text, now_ns=NOW)
    got = engine.top(query, field, size)
    ranked, missing = expected_top(query, DOCS, field)
    assert [(b.key, b.count) for b in got.buckets] == ranked[:size]
    assert (got.other, got.missing) == (sum(n for _, n in ranked[size:]), missing)
    assert engine.distinct(query, field) == len(ranked)


@pytest.mark.parametrize(
    "where", [Term("origin", "logs.parsed/0/1"), Prefix("logs", "origin"), Exists("origin")]
)
def test_origin_is_shown_but_a_query_naming_it_is_refused_alike(
    engine: StoreReader, where: Node
) -> None:
    with pytest.raises(QueryError, match=r"origin .* cannot be searched"):
        engine.search(Query(where), 10)
    with pytest.raises(QueryError, match=r"origin .* cannot be searched"):
        engine.count(Query(And((Term("kind", "log"), Not(where)))))
    shown = engine.search(parse_query("*", now_ns=NOW), 50).hits
    by_id = {doc.id: doc.origin for doc in DOCS}
    assert shown
    assert all(doc.origin and doc.origin == by_id[doc.id] for doc in shown)


@pytest.mark.parametrize("field", ["id", "origin", "message", "time"])
def test_top_and_distinct_refuse_columns_without_values_to_count(
    engine: StoreReader, field: str
) -> None:
    query = parse_query("*", now_ns=NOW)
    with pytest.raises(QueryError, match="no values to count"):
        engine.top(query, field, 5)
    with pytest.raises(QueryError, match="no values to count"):
        engine.distinct(query, field)


def test_limits_refused_alike(engine: StoreReader) -> None:
    query = parse_query("*", now_ns=NOW)
    with pytest.raises(QueryError):
        engine.top(query, "host", 0)
    with pytest.raises(QueryError):
        engine.search(query, 0)
    with pytest.raises(QueryError, match="time range"):
        engine.histogram(query, HOUR)
    with pytest.raises(QueryError, match="buckets"):
        engine.histogram(Query(query.where, SAMPLE_START_NS, NOW), 1_000_000)


@pytest.mark.parametrize(
    ("field", "text"), [("host", "*"), ("source", "failed"), ("workshop", "NOT kind:log")]
)
def test_distinct_counts(engine: StoreReader, field: str, text: str) -> None:
    query = parse_query(text, now_ns=NOW)
    want = len({getattr(d, field) for d in expected_docs(query, DOCS) if getattr(d, field)})
    assert engine.distinct(query, field) == want


@pytest.mark.parametrize("pick", [0, 1, 350, 699])
def test_context_is_the_neighbours_on_the_same_host(engine: StoreReader, pick: int) -> None:
    anchor = sorted(DOCS, key=lambda d: (d.time, d.id))[pick]
    same_host = sorted((d for d in DOCS if d.host == anchor.host), key=lambda d: (d.time, d.id))
    at = same_host.index(anchor)
    got = engine.context(anchor.id, 3, 4)
    assert got is not None
    assert got.anchor == anchor
    assert [d.id for d in got.before] == [d.id for d in same_host[max(0, at - 3) : at]]
    assert [d.id for d in got.after] == [d.id for d in same_host[at + 1 : at + 5]]
    assert engine.context("no-such-id", 3, 3) is None


def test_stats_agree(engine: StoreReader) -> None:
    stats = engine.stats()
    assert stats.docs == len(DOCS)
    assert stats.oldest == min(d.time for d in DOCS)
    assert stats.newest == max(d.time for d in DOCS)


LEAVES: list[Node] = [
    Word("failed"),
    Word("10.1.15.10"),
    Word("root"),
    Phrase("session opened"),
    Phrase("/var/log/messages"),
    Prefix("pub"),
    Prefix("10.0.1"),
    Prefix("run-parts /etc/cron."),
    Term("host", "cn0003"),
    Term("kind", "event"),
    Term("severity", "error"),
    Term("fields.port", "443"),
    Term("fields.ok", "false"),
    Term("fields.ratio", "2"),
    Term("message", "Killed process"),
    Prefix("cn001", "host"),
    Prefix("b", "fields.user"),
    Prefix("/", "fields.req.path"),
    Range("fields.port", lower=100, upper=9000, include_upper=False),
    Range("fields.ratio", upper=1.25),
    Range("time", lower=SAMPLE_START_NS + DAY_NS),
    Range("received", upper=SAMPLE_START_NS + 2 * DAY_NS, include_upper=False),
    Exists("fields.addr"),
    Exists("message"),
    Exists("pattern"),
    Exists("fields.job.id"),
]


def _trees() -> st.SearchStrategy[Node]:
    leaf = st.sampled_from(LEAVES)
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.lists(inner, min_size=2, max_size=3).map(lambda c: And(tuple(c))),
            st.lists(inner, min_size=2, max_size=3).map(lambda c: Or(tuple(c))),
            inner.map(Not),
        ),
        max_leaves=6,
    )


@settings(max_examples=60)
@given(where=_trees())
def test_any_tree_of_the_constructs_finds_the_oracles_hits(
    engine: StoreReader, where: Node
) -> None:
    """Random combinations of every construct (the parser aside): the oracle's hits, in order."""
    query = Query(where)
    page = engine.search(query, 1000)
    assert [doc.id for doc in page.hits] == expected_ids(query, DOCS)
    assert page.next is None
