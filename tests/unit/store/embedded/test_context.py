"""Context: the records just before and after one record, on its host, by (time, id)."""

from __future__ import annotations

from pathlib import Path

from logfactory.store.document import StoredDoc
from logfactory.store.engines.embedded import EmbeddedReader


def _host_line(docs: list[StoredDoc], host: str) -> list[StoredDoc]:
    return sorted((d for d in docs if d.host == host), key=lambda d: (d.time, d.id))


def test_context_matches_the_host_line(
    reader: EmbeddedReader, filled: tuple[Path, list[StoredDoc]]
) -> None:
    docs = filled[1]
    for anchor in docs[::97]:
        line = _host_line(docs, anchor.host)
        at = line.index(anchor)
        found = reader.context(anchor.id, 5, 4)
        assert found is not None
        assert found.anchor == anchor
        assert found.before == line[max(0, at - 5) : at]
        assert found.after == line[at + 1 : at + 5]


def test_context_at_the_edges(reader: EmbeddedReader, filled: tuple[Path, list[StoredDoc]]) -> None:
    docs = filled[1]
    line = _host_line(docs, "gpu001")
    oldest = reader.context(line[0].id, 3, 0)
    assert oldest is not None
    assert (oldest.before, oldest.after) == ([], [])
    newest = reader.context(line[-1].id, 0, 3)
    assert newest is not None
    assert newest.after == []
    assert reader.context("no-such-id", 3, 3) is None
