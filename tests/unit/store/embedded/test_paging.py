"""Pages newest first in exact (time, id) order across days, stable under concurrent writes."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.helpers.store_data import SAMPLE_START_NS, positions, sample_docs
from tests.helpers.store_oracle import expected_ids

from logfactory.store.document import StoredDoc
from logfactory.store.engine import Cursor
from logfactory.store.engines.embedded import EmbeddedReader, EmbeddedWriter
from logfactory.store.query.tree import MatchAll, Query, Term, Word

YEAR_S = 365 * 86_400.0


def _all_pages(reader: EmbeddedReader, query: Query, size: int) -> list[str]:
    ids: list[str] = []
    after: Cursor | None = None
    for _ in range(10_000):
        page = reader.search(query, size, after)
        ids += [doc.id for doc in page.hits]
        if page.next is None:
            return ids
        after = page.next
    raise AssertionError("the pages never ended")


@pytest.mark.parametrize("size", [1, 7, 100, 5000])
def test_pages_follow_the_oracle(
    reader: EmbeddedReader, filled: tuple[Path, list[StoredDoc]], size: int
) -> None:
    docs = filled[1]
    for query in (Query(MatchAll()), Query(Word("failed")), Query(Term("host", "cn0004"))):
        assert _all_pages(reader, query, size) == expected_ids(query, docs)


def test_ties_are_ordered_by_id(
    reader: EmbeddedReader, filled: tuple[Path, list[StoredDoc]]
) -> None:
    docs = filled[1]
    times = [doc.time for doc in docs]
    tied = {t for t in times if times.count(t) >= 3}
    assert tied, "the sample has groups of equal times"
    moment = min(tied)
    query = Query(MatchAll(), start=moment, end=moment + 1)
    want = expected_ids(query, docs)
    assert len(want) >= 3
    assert _all_pages(reader, query, 1) == want  # every page boundary inside the group


def test_total_and_next(reader: EmbeddedReader, filled: tuple[Path, list[StoredDoc]]) -> None:
    docs = filled[1]
    query = Query(Word("failed"))
    want = expected_ids(query, docs)
    first = reader.search(query, 10)
    assert first.total == len(want)
    assert first.next == Cursor(first.hits[-1].time, first.hits[-1].id)
    second = reader.search(query, 10, first.next)
    assert second.total == len(want)  # the total counts every match, not what is left
    last = reader.search(query, len(want))
    assert last.next is None


def test_pages_stay_stable_while_the_writer_writes(store_dir: Path) -> None:
    early = sample_docs(600, seed=21, days=2)
    late = sample_docs(600, seed=22, days=2)  # the same days: older and newer times mixed in
    writer = EmbeddedWriter(store_dir, max_age_s=YEAR_S, max_size=0)
    writer.add(positions(early))
    writer.commit()
    reader = EmbeddedReader(store_dir)
    late_placed = positions(late, first=10_000)
    seen: list[StoredDoc] = []
    after: Cursor | None = None
    for step in range(1000):
        page = reader.search(Query(MatchAll()), 25, after)
        seen += page.hits
        if step < 12:  # between pages, the writer adds 50 more
            writer.add(late_placed[step * 50 : (step + 1) * 50])
            writer.commit()
        if page.next is None:
            break
        after = page.next
    writer.close()
    ids = [doc.id for doc in seen]
    assert len(ids) == len(set(ids)), "no document twice"
    assert {doc.id for doc in early} <= set(ids), "no gap: every early document was handed out"
    keys = [(doc.time, doc.id) for doc in seen]
    assert keys == sorted(keys, reverse=True)


def test_an_export_scan_follows_the_pages_up_to_its_cap(
    reader: EmbeddedReader, filled: tuple[Path, list[StoredDoc]]
) -> None:
    query = Query(MatchAll())
    want = expected_ids(query, filled[1])
    assert len(want) > 1000  # more than one of the scan's pages
    assert [doc.id for doc in reader.scan(query, 100_000, 60.0)] == want
    assert [doc.id for doc in reader.scan(query, 1234, 60.0)] == want[:1234]


def test_a_spent_deadline_says_so(reader: EmbeddedReader) -> None:
    page = reader.search(Query(MatchAll()), 10, timeout_s=-1.0)
    assert page.timed_out
    assert page.total is None
    window = Query(MatchAll(), SAMPLE_START_NS, SAMPLE_START_NS + 3_600 * 10**9)
    assert reader.histogram(window, 60 * 10**9, timeout_s=-1.0).timed_out
    assert reader.top(Query(MatchAll()), "host", 5, timeout_s=-1.0).timed_out
    assert list(reader.scan(Query(MatchAll()), 10, -1.0)) == []
