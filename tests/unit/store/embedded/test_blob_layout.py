"""The embedded store's on-disk layout 2: one compressed blob a document, a zstd dictionary
trained per day, and a layout file that makes an older or newer store refused by name."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from collections import Counter
from pathlib import Path

import msgspec
import pytest
import tantivy
from tests.helpers.store_data import positions, sample_docs

from logfactory.errors import StoreUnavailable
from logfactory.store.document import StoredDoc
from logfactory.store.engines.embedded import EmbeddedReader, EmbeddedWriter
from logfactory.store.engines.embedded.blob import DAY_DICT, DICT_FILE, PLAIN, TRAIN_DOCS
from logfactory.store.engines.embedded.partitions import (
    INDEX_DIR,
    LAYOUT_FILE,
    LAYOUT_VERSION,
    day_dirs,
)
from logfactory.store.query.tree import MatchAll, Query

YEAR_S = 365 * 86_400.0
MANY = TRAIN_DOCS + 900


def _writer(root: Path) -> EmbeddedWriter:
    return EmbeddedWriter(root, max_age_s=YEAR_S, max_size=0)


def _all(reader: EmbeddedReader) -> list[StoredDoc]:
    return sorted(reader.search(Query(MatchAll()), 100_000).hits, key=lambda d: d.id)


def _flags(day: Path) -> Counter[int]:
    """How many blobs of each kind (their first byte) the day's index holds."""
    index = tantivy.Index.open(str(day / INDEX_DIR))
    index.reload()
    searcher = index.searcher()
    hits = searcher.search(tantivy.Query.all_query(), 1_000_000).hits
    blobs = (searcher.doc(address).to_dict().get("blob") for _score, address in hits)
    return Counter(blob[0][0] for blob in blobs if blob)


@pytest.fixture
def big_day(store_dir: Path) -> list[StoredDoc]:
    """A store with one day of ``MANY`` documents: more than a dictionary is trained from."""
    docs = sample_docs(MANY, seed=11, days=1)
    writer = _writer(store_dir)
    placed = positions(docs)
    writer.add(placed[: TRAIN_DOCS + 100])
    day = store_dir / day_dirs(store_dir)[0]
    # trained while adding, on disk before the commit that first holds a blob needing it
    assert (day / DICT_FILE).is_file()
    writer.commit()
    writer.add(placed[TRAIN_DOCS + 100 :])
    writer.close()
    return docs


def test_a_day_trains_its_dictionary_and_every_document_comes_back(
    store_dir: Path, big_day: list[StoredDoc]
) -> None:
    assert len(day_dirs(store_dir)) == 1
    day = store_dir / day_dirs(store_dir)[0]
    assert stat.S_IMODE((day / DICT_FILE).stat().st_mode) == 0o600
    assert _flags(day) == {PLAIN: TRAIN_DOCS, DAY_DICT: MANY - TRAIN_DOCS}
    reader = EmbeddedReader(store_dir)
    assert _all(reader) == sorted(big_day, key=lambda d: d.id)


def test_a_small_day_stays_plain(store_dir: Path) -> None:
    docs = sample_docs(200, seed=3, days=1)
    writer = _writer(store_dir)
    writer.add(positions(docs))
    writer.close()
    day = store_dir / day_dirs(store_dir)[0]
    assert not (day / DICT_FILE).exists()
    assert _flags(day) == {PLAIN: 200}
    assert _all(EmbeddedReader(store_dir)) == sorted(docs, key=lambda d: d.id)


def test_a_writer_opened_again_compresses_with_the_days_dictionary(
    store_dir: Path, big_day: list[StoredDoc]
) -> None:
    day = store_dir / day_dirs(store_dir)[0]
    trained = (day / DICT_FILE).read_bytes()
    more = sample_docs(50, seed=12, days=1)
    more = [msgspec.structs.replace(doc, id=f"again/{i}") for i, doc in enumerate(more)]
    writer = _writer(store_dir)
    writer.add(positions(more, topic="logs.parsed", first=10_000_000))
    writer.close()
    assert (day / DICT_FILE).read_bytes() == trained
    assert _flags(day)[DAY_DICT] == MANY - TRAIN_DOCS + 50
    assert _all(EmbeddedReader(store_dir)) == sorted(big_day + more, key=lambda d: d.id)


def test_a_reader_in_another_process_loads_the_dictionary(
    store_dir: Path, big_day: list[StoredDoc]
) -> None:
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from logfactory.store.engines.embedded import EmbeddedReader\n"
        "from logfactory.store.query.tree import MatchAll, Query\n"
        "hits = EmbeddedReader(Path(sys.argv[1])).search(Query(MatchAll()), 100000).hits\n"
        "print(json.dumps(sorted([d.id, d.message, d.origin] for d in hits)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(store_dir)], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == sorted([d.id, d.message, d.origin] for d in big_day)


def test_a_lost_dictionary_is_named(store_dir: Path, big_day: list[StoredDoc]) -> None:
    day = store_dir / day_dirs(store_dir)[0]
    (day / DICT_FILE).unlink()
    with pytest.raises(StoreUnavailable, match="lost its compression dictionary"):
        _all(EmbeddedReader(store_dir))


def test_a_new_store_is_written_in_this_layout(store_dir: Path) -> None:
    writer = _writer(store_dir)
    writer.close()
    assert (store_dir / LAYOUT_FILE).read_text().strip() == str(LAYOUT_VERSION)
    again = _writer(store_dir)  # its own layout: taken again
    assert again.add([]) == 0
    again.close()


@pytest.mark.parametrize(("layout", "named"), [(None, "'1'"), ("3\n", "'3'")])
def test_a_store_in_another_layout_is_refused_by_name(
    store_dir: Path, layout: str | None, named: str
) -> None:
    (store_dir / "2026-03-01" / INDEX_DIR).mkdir(parents=True)  # a day from before the file
    if layout is not None:
        (store_dir / LAYOUT_FILE).write_text(layout)
    with pytest.raises(StoreUnavailable, match=f"layout {named}.*move it aside"):
        _writer(store_dir)
    with pytest.raises(StoreUnavailable, match=f"layout {named}"):
        EmbeddedReader(store_dir).search(Query(MatchAll()), 10)
    # refused, and the lock given back: a writer after the store is moved aside takes it
    (store_dir / LAYOUT_FILE).unlink(missing_ok=True)
    (store_dir / "2026-03-01" / INDEX_DIR).rmdir()
    (store_dir / "2026-03-01").rmdir()
    _writer(store_dir).close()
