"""Counts of whole days (engines/embedded/counts.py): always equal to the rows.

Each test compares the reader's answer with the oracle over the documents the store holds,
and checks which days were answered from counts, so a test cannot pass on the live path alone.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from tests.helpers.store_data import DAY_NS, SAMPLE_START_NS, positions, sample_docs
from tests.helpers.store_oracle import expected_histogram, expected_top

from logfactory.store.document import StoredDoc
from logfactory.store.engines.embedded import EmbeddedReader, EmbeddedWriter
from logfactory.store.engines.embedded.counts import CountCache, index_state
from logfactory.store.engines.embedded.partitions import day_of, read_span
from logfactory.store.query.tree import MatchAll, Query, Term

HOUR = 3_600 * 10**9
MINUTE = 60 * 10**9
DAYS = ("2026-03-01", "2026-03-02", "2026-03-03")
COLUMNS = ("host", "severity", "type", "pattern", "kind", "source", "fields.user", "fields.port")
WINDOWS = (
    (SAMPLE_START_NS - DAY_NS, SAMPLE_START_NS + 4 * DAY_NS),  # every day whole
    (SAMPLE_START_NS + 30 * HOUR, SAMPLE_START_NS + 3 * DAY_NS),  # the first day's edge cut
    (SAMPLE_START_NS + 5 * HOUR, SAMPLE_START_NS + 53 * HOUR),  # both edges cut
    # cut off the minute: pieces shorter than a minute at both ends
    (SAMPLE_START_NS + 5 * HOUR + 12_345_678_901, SAMPLE_START_NS + 53 * HOUR - 7_000_000_001),
    (SAMPLE_START_NS + 26 * HOUR + 1_000, SAMPLE_START_NS + 26 * HOUR + 50_000_000_000),
)


def _writer(root: Path) -> EmbeddedWriter:
    return EmbeddedWriter(root, max_age_s=3650 * 86_400, max_size=0)


@pytest.fixture
def docs() -> list[StoredDoc]:
    return sample_docs(600, seed=11, days=3)


@pytest.fixture
def root(store_dir: Path, docs: list[StoredDoc]) -> Path:
    writer = _writer(store_dir)
    writer.add(positions(docs))
    writer.commit()
    writer.close()
    return store_dir


@pytest.fixture
def reader(root: Path) -> Iterator[EmbeddedReader]:
    opened = EmbeddedReader(root, today=lambda: "2026-12-06")
    yield opened
    opened.close()


def _counted(reader: EmbeddedReader, query: Query, whole: bool = True) -> list[str]:
    """The days the reader answers from counts for ``query``: wholly inside its window, or
    (``whole`` false) cut by it."""
    states: dict[str, str] = {}
    sources = reader._sources(query.start, query.end, states)
    _live, counted = reader._counts.split(query, sources, states)
    return sorted(day.source.name for day in counted if day.whole == whole)


def _assert_exact(reader: EmbeddedReader, docs: list[StoredDoc], query: Query) -> None:
    for column in COLUMNS:
        want, missing = expected_top(query, docs, column)
        found = reader.top(query, column, 5)
        assert [(b.key, b.count) for b in found.buckets] == want[:5], column
        assert found.other == sum(n for _v, n in want[5:]), column
        assert found.missing == missing, column
        assert reader.distinct(query, column) == len(want), column
    for interval in (MINUTE, 7 * MINUTE, HOUR):
        got = reader.histogram(query, interval)
        assert [(b.key, b.count) for b in got.buckets] == expected_histogram(query, docs, interval)


@pytest.mark.parametrize("window", WINDOWS)
def test_counted_days_answer_exactly(
    reader: EmbeddedReader, docs: list[StoredDoc], window: tuple[int, int]
) -> None:
    query = Query(MatchAll(), *window)
    _assert_exact(reader, docs, query)
    # asked twice: the second answer comes from the kept counts, and is the same
    _assert_exact(reader, docs, query)


def test_whole_days_and_cut_days_come_from_counts(reader: EmbeddedReader) -> None:
    assert _counted(reader, Query(MatchAll(), *WINDOWS[0])) == list(DAYS)
    spans = {day: read_span(reader.path / day) for day in DAYS}
    low, high = WINDOWS[2]
    cut = Query(MatchAll(), low, high)
    inside = [d for d, s in spans.items() if s and s.min_time >= low and s.max_time < high]
    assert _counted(reader, cut) == inside
    assert _counted(reader, cut, whole=False) == sorted(set(DAYS) - set(inside))
    assert len(inside) < len(DAYS)  # the window does cut a day
    # a filter the counts cannot serve: every day live
    assert _counted(reader, Query(Term("host", "cn0001"), *WINDOWS[0])) == []


def test_today_is_aggregated_live(root: Path, docs: list[StoredDoc]) -> None:
    reader = EmbeddedReader(root, today=lambda: DAYS[1])
    try:
        query = Query(MatchAll(), *WINDOWS[0])
        assert _counted(reader, query) == [DAYS[0]]
        assert _counted(reader, query, whole=False) == []
        _assert_exact(reader, docs, query)
    finally:
        reader.close()


def test_a_late_record_into_an_old_day_is_counted(
    root: Path, reader: EmbeddedReader, docs: list[StoredDoc]
) -> None:
    query = Query(MatchAll(), *WINDOWS[0])
    _assert_exact(reader, docs, query)  # counts of every day kept
    before = index_state(root / DAYS[0], read_span(root / DAYS[0]).token)  # type: ignore[union-attr]
    moment = SAMPLE_START_NS + 2 * HOUR
    late = msgspec.structs.replace(
        docs[0], id="late-1", host="late-host", severity="alert", time=moment, received=moment
    )
    assert day_of(late.received) == DAYS[0]
    writer = _writer(root)
    assert writer.add([(("logs.late", 0, 0), late)]) == 1
    writer.commit()
    writer.close()
    assert index_state(root / DAYS[0], read_span(root / DAYS[0]).token) != before  # type: ignore[union-attr]
    assert _counted(reader, query) == list(DAYS)
    _assert_exact(reader, [*docs, late], query)
    assert reader.top(query, "host", 1000).buckets[-1].key == "late-host"


def test_a_stale_state_is_counted_again(reader: EmbeddedReader, docs: list[StoredDoc]) -> None:
    """Counts kept under a state the index no longer has (a commit since, or counts computed
    from a searcher newer than the state they were kept under) are never served."""
    query = Query(MatchAll(), *WINDOWS[0])
    reader.top(query, "host", 3)
    for day in reader._counts._days.values():
        day.terms["host"] = (day.terms["host"][0] + day.terms["host"][0], 0, 0)
        day.state += ":old"  # as if kept under an older commit
    _assert_exact(reader, docs, query)


def test_a_day_without_a_commit_is_live(root: Path, reader: EmbeddedReader) -> None:
    """No readable commit (the index's meta.json missing or damaged): no state, no counts."""
    token = read_span(root / DAYS[0]).token  # type: ignore[union-attr]
    assert index_state(root / DAYS[0], token) is not None
    meta = root / DAYS[0] / "index" / "meta.json"
    kept = meta.read_bytes()
    meta.write_text("{not json")
    try:
        assert index_state(root / DAYS[0], token) is None
        assert index_state(root / "2031-01-01", token) is None
    finally:
        meta.write_bytes(kept)


def test_a_day_dropped_and_made_again_is_counted_anew(
    root: Path, reader: EmbeddedReader, docs: list[StoredDoc]
) -> None:
    query = Query(MatchAll(), *WINDOWS[0])
    _assert_exact(reader, docs, query)
    shutil.rmtree(root / DAYS[0])
    held = [d for d in docs if day_of(d.received) != DAYS[0]]
    assert _counted(reader, query) == list(DAYS[1:])
    _assert_exact(reader, held, query)
    writer = _writer(root)  # a replay of the dropped day: a new folder, a new token
    writer.add([(pos, d) for pos, d in positions(docs) if day_of(d.received) == DAYS[0]])
    writer.commit()
    writer.close()
    assert _counted(reader, query) == list(DAYS)
    _assert_exact(reader, docs, query)


def test_decoded_fields_are_not_kept(reader: EmbeddedReader) -> None:
    query = Query(MatchAll(), *WINDOWS[0])
    reader.top(query, "fields.user", 3)
    reader.top(query, "host", 3)
    assert {column for day in reader._counts._days.values() for column in day.terms} == {"host"}


def test_cache_split_needs_a_state_and_forgets_gone_days(reader: EmbeddedReader) -> None:
    query = Query(MatchAll(), *WINDOWS[0])
    states: dict[str, str] = {}
    sources = reader._sources(query.start, query.end, states)
    cache = CountCache(lambda: "2099-01-01")
    live, counted = cache.split(query, sources, {})
    assert [s.name for s in live] == [s.name for s in sources]
    assert counted == []
    _live, counted = cache.split(query, sources, states)
    assert len(counted) == len(DAYS)
    cache.forget([DAYS[2]])
    assert list(cache._days) == [DAYS[2]]


def test_the_window_s_end_minutes_are_counted_to_the_nanosecond(
    root: Path, docs: list[StoredDoc]
) -> None:
    """Records in the minutes a window cuts (inside and outside it, a nanosecond apart) land in
    the right bucket: the minutes wholly inside come from counts, the pieces live."""
    low = SAMPLE_START_NS + 7 * HOUR + 12_345_678_901
    high = SAMPLE_START_NS + 20 * HOUR + 33_000_000_017
    moments = [low - 1, low, low + 1, high - 1, high, high + 1]
    moments += [low - low % MINUTE, high - high % MINUTE + MINUTE - 1]
    extra = [
        msgspec.structs.replace(
            docs[0], id=f"edge-{i}", host=f"edge{i % 3}", time=moment, received=moment
        )
        for i, moment in enumerate(moments)
    ]
    writer = _writer(root)
    writer.add([(("logs.edge", 0, i), doc) for i, doc in enumerate(extra)])
    writer.commit()
    writer.close()
    reader = EmbeddedReader(root, today=lambda: "2026-12-06")
    try:
        query = Query(MatchAll(), low, high)
        assert _counted(reader, query, whole=False) == [DAYS[0]]
        _assert_exact(reader, [*docs, *extra], query)
    finally:
        reader.close()
