"""Histogram, top values and distinct counts equal to a Python count over the same docs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from tests.helpers.store_data import SAMPLE_START_NS
from tests.helpers.store_oracle import expected_docs, field_leaves

from logfactory.errors import QueryError
from logfactory.store.document import StoredDoc
from logfactory.store.engines.embedded import EmbeddedReader
from logfactory.store.query.tree import MatchAll, Node, Query, Term, Word

HOUR = 3_600 * 10**9
MINUTE = 60 * 10**9


def _value_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return (
        value if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value)
    )


def _python_top(docs: list[StoredDoc], field: str) -> tuple[Counter[str], int]:
    counts: Counter[str] = Counter()
    missing = 0
    for doc in docs:
        if field.startswith("fields."):
            values = {_value_text(v) for v in field_leaves(doc, field[7:])}
        else:
            values = {getattr(doc, field)} - {""}
        counts.update(values)
        missing += not values
    return counts, missing


@pytest.mark.parametrize(
    ("interval", "start", "hours"),
    [
        (HOUR, SAMPLE_START_NS, 72),
        (7 * MINUTE, SAMPLE_START_NS + 13 * MINUTE, 30),
        (1_500_000_000, SAMPLE_START_NS + HOUR, 2),
    ],
)
def test_histogram_counts_exactly(
    reader: EmbeddedReader,
    filled: tuple[Path, list[StoredDoc]],
    interval: int,
    start: int,
    hours: int,
) -> None:
    docs = filled[1]
    for where in (MatchAll(), Word("failed")):
        query = Query(where, start, start + hours * HOUR)
        found = reader.histogram(query, interval)
        first = start - start % interval
        want: Counter[int] = Counter(
            first + (d.time - first) // interval * interval for d in expected_docs(query, docs)
        )
        assert found.buckets[0].key == first
        keys = [int(bucket.key) for bucket in found.buckets]
        assert keys == list(range(first, query.end, interval))  # type: ignore[arg-type]
        assert {b.key: b.count for b in found.buckets if b.count} == dict(want)


def test_histogram_limits(reader: EmbeddedReader) -> None:
    with pytest.raises(QueryError, match="at most 10000"):
        reader.histogram(Query(MatchAll(), 0, 20_000 * MINUTE), MINUTE)
    with pytest.raises(QueryError, match="start and an end"):
        reader.histogram(Query(MatchAll()), MINUTE)


TOP_CASES: list[tuple[Node, str]] = [
    (MatchAll(), "host"),
    (MatchAll(), "severity"),
    (Word("failed"), "host"),
    (MatchAll(), "fields.user"),
    (MatchAll(), "fields.port"),
    (MatchAll(), "fields.ok"),
    (MatchAll(), "fields.ratio"),
    (Term("kind", "event"), "type"),
]


@pytest.mark.parametrize(("where", "field"), TOP_CASES)
def test_top_and_distinct_count_exactly(
    reader: EmbeddedReader, filled: tuple[Path, list[StoredDoc]], where: Node, field: str
) -> None:
    query = Query(where)
    matched = expected_docs(query, filled[1])
    counts, missing = _python_top(matched, field)
    found = reader.top(query, field, 3)
    want = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    assert [(b.key, b.count) for b in found.buckets] == want[:3]
    assert found.other == sum(n for _v, n in want[3:])
    assert found.missing == missing
    assert reader.distinct(query, field) == len(counts)


def test_top_limits(reader: EmbeddedReader) -> None:
    with pytest.raises(QueryError, match="1 to 1000"):
        reader.top(Query(MatchAll()), "host", 1001)
    with pytest.raises(QueryError, match="has no values to count"):
        reader.top(Query(MatchAll()), "message", 10)


def test_count_equals_the_oracle(
    reader: EmbeddedReader, filled: tuple[Path, list[StoredDoc]]
) -> None:
    for where in (MatchAll(), Word("failed"), Term("fields.port", "22")):
        query = Query(where, SAMPLE_START_NS + HOUR, SAMPLE_START_NS + 50 * HOUR)
        assert reader.count(query) == len(expected_docs(query, filled[1]))
