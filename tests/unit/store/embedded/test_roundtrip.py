"""Documents in and out of the embedded store unchanged, whatever they hold; one writer."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.helpers.store_data import SAMPLE_START_NS, positions, sample_docs

from logfactory.errors import QueryError, StoreUnavailable
from logfactory.store.document import StoredDoc
from logfactory.store.engine import Cursor
from logfactory.store.engines.embedded import EmbeddedReader, EmbeddedWriter
from logfactory.store.query.tree import MatchAll, Phrase, Query, Range, Term, Word

YEAR_S = 365 * 86_400.0


def _writer(root: Path) -> EmbeddedWriter:
    return EmbeddedWriter(root, max_age_s=YEAR_S, max_size=0)


def _doc(i: int, **values: object) -> StoredDoc:
    base: dict[str, object] = {
        "id": f"logs.raw/0/{i}",
        "kind": "log",
        "time": SAMPLE_START_NS + i * 1_000_000_000,
        "received": SAMPLE_START_NS + i * 1_000_000_000,
        "host": "cn0001",
        "source": "app",
        "message": f"record {i}",
    }
    base.update(values)
    return StoredDoc(**base)  # type: ignore[arg-type]


def test_sample_docs_come_back_equal(store_dir: Path) -> None:
    docs = sample_docs(300, seed=2, days=2)
    writer = _writer(store_dir)
    assert writer.add(positions(docs)) == 300
    writer.commit()
    reader = EmbeddedReader(store_dir)
    hits = reader.search(Query(MatchAll()), 1000).hits
    assert sorted(hits, key=lambda d: d.id) == sorted(docs, key=lambda d: d.id)
    writer.close()


def test_hard_documents_are_stored_and_found(store_dir: Path) -> None:
    huge = "begin " + "lorem ipsum dolor " * 60_000 + " needle"
    hard = [
        _doc(0, message=""),
        _doc(1, message=huge),
        _doc(2, message="Ünïcödé Grüße 東京 Ελλάδα", host="nœud7"),
        _doc(3, fields={"a.b": 1, "c": {"d": [1, "two", True, None]}, "e": 2**64 + 1}),
        _doc(4, fields={"port": "22", "flag": False, "ratio": 0.25, "big": 2**63 + 5}),
        _doc(5, fields={"odd": b"bytes", "bad": float("nan"), "set": (1, 2)}),
    ]
    writer = _writer(store_dir)
    assert writer.add([(("logs.parsed", 0, i), doc) for i, doc in enumerate(hard)]) == 6
    writer.commit()
    reader = EmbeddedReader(store_dir)

    def ids(node: object) -> list[str]:
        return [d.id for d in reader.search(Query(node), 10).hits]  # type: ignore[arg-type]

    assert len(reader.search(Query(MatchAll()), 10).hits) == 6
    assert ids(Word("needle")) == ["logs.raw/0/1"]
    assert ids(Phrase("Grüße 東京")) == ["logs.raw/0/2"]
    assert ids(Term("host", "nœud7")) == ["logs.raw/0/2"]
    assert ids(Term("fields.a.b", "1")) == ["logs.raw/0/3"]
    assert ids(Term("fields.c.d", "two")) == ["logs.raw/0/3"]
    assert ids(Term("fields.c.d", "true")) == ["logs.raw/0/3"]
    assert ids(Term("fields.port", "22")) == ["logs.raw/0/4"]
    assert ids(Term("fields.flag", "false")) == ["logs.raw/0/4"]
    assert ids(Range("fields.ratio", 0.2, 0.3)) == ["logs.raw/0/4"]
    assert ids(Term("fields.odd", "b'bytes'")) == ["logs.raw/0/5"]  # kept as its text
    found = {d.id: d for d in reader.search(Query(MatchAll()), 10).hits}
    assert found["logs.raw/0/1"].message == huge
    assert found["logs.raw/0/0"].message == ""
    assert found["logs.raw/0/4"].fields == hard[4].fields
    writer.close()


def test_a_missing_store_is_empty(tmp_path: Path) -> None:
    reader = EmbeddedReader(tmp_path / "nothing-here")
    page = reader.search(Query(MatchAll()), 10)
    assert (page.hits, page.total, page.next) == ([], 0, None)
    assert reader.count(Query(MatchAll())) == 0
    assert reader.context("logs.raw/0/1", 5, 5) is None
    assert reader.stats().docs == 0
    window = Query(MatchAll(), SAMPLE_START_NS, SAMPLE_START_NS + 3_600_000_000_000)
    assert sum(b.count for b in reader.histogram(window, 60_000_000_000).buckets) == 0


def test_one_writer_at_a_time(store_dir: Path) -> None:
    first = _writer(store_dir)
    with pytest.raises(StoreUnavailable, match="being written by pid"):
        _writer(store_dir)
    first.close()
    second = _writer(store_dir)  # the lock went with the first
    second.close()


def test_bad_queries_name_the_problem(reader: EmbeddedReader) -> None:
    with pytest.raises(QueryError, match="host is text"):
        reader.search(Query(Range("host", 1, 2)), 10)
    with pytest.raises(QueryError, match="no field 'nope'"):
        reader.search(Query(Term("nope", "x")), 10)
    with pytest.raises(QueryError, match="letters, digits"):
        reader.search(Query(Range("fields.a b", 1, 2)), 10)
    with pytest.raises(QueryError, match="at least one"):
        reader.search(Query(MatchAll()), 0)


def test_stats_count_what_is_held(filled: tuple[Path, list[StoredDoc]]) -> None:
    root, docs = filled
    held = EmbeddedReader(root).stats()
    assert held.docs == len(docs)
    assert held.partitions == 3
    assert held.oldest == min(d.time for d in docs)
    assert held.newest == max(d.time for d in docs)
    assert held.bytes > 0


def test_a_cursor_past_everything_gives_an_empty_last_page(reader: EmbeddedReader) -> None:
    page = reader.search(Query(MatchAll()), 10, Cursor(0, ""))
    assert page.hits == []
    assert page.next is None
