"""Histogram, top values and distinct counts equal to a Python count over the same docs."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.helpers.store_data import SAMPLE_START_NS
from tests.helpers.store_oracle import expected_docs, expected_histogram, expected_top

from logfactory.errors import QueryError
from logfactory.store.document import StoredDoc
from logfactory.store.engines.embedded import EmbeddedReader
from logfactory.store.query.tree import MatchAll, Node, Query, Term, Word

HOUR = 3_600 * 10**9
MINUTE = 60 * 10**9


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
        assert found.interval == interval
        assert [(b.key, b.count) for b in found.buckets] == expected_histogram(
            query, docs, interval
        )
        assert sum(b.count for b in found.buckets) == len(expected_docs(query, docs))


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
    want, missing = expected_top(query, filled[1], field)
    found = reader.top(query, field, 3)
    assert [(b.key, b.count) for b in found.buckets] == want[:3]
    assert found.other == sum(n for _v, n in want[3:])
    assert found.missing == missing
    assert reader.distinct(query, field) == len(want)


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
