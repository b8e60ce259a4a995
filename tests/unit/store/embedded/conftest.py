"""Fixtures of the embedded engine's tests: a store folder, and a store filled once per module
with the sample documents (three days) for the read-only tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from tests.helpers.store_data import positions, sample_docs

from logfactory.store.document import StoredDoc
from logfactory.store.engines.embedded import EmbeddedReader, EmbeddedWriter

FILLED_DOCS = 1500


class FilledStore(NamedTuple):
    root: Path
    docs: list[StoredDoc]

    def __repr__(self) -> str:  # short: Hypothesis prints the arguments of a failing example
        return f"FilledStore({self.root}, {len(self.docs)} docs)"


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> FilledStore:
    """A store holding ``sample_docs(1500, seed=7, days=3)``, committed in three batches."""
    root = tmp_path_factory.mktemp("filled") / "store"
    docs = sample_docs(FILLED_DOCS, seed=7, days=3)
    writer = EmbeddedWriter(root, max_age_s=3650 * 86_400, max_size=0)
    placed = positions(docs)
    for part in (placed[:500], placed[500:1000], placed[1000:]):
        writer.add(part)
        writer.commit()
    writer.close()
    return FilledStore(root, docs)


@pytest.fixture
def reader(filled: FilledStore) -> Iterator[EmbeddedReader]:
    opened = EmbeddedReader(filled[0])
    yield opened
    opened.close()
