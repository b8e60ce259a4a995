"""What the embedded store holds: documents per day, bytes, the range of times.

Shared by the writer (its gauges, retention reports) and the reader (``stats``). Counts exclude
the checkpoint documents; the oldest and newest times come from each day's ``span.json`` (which
may be a little wider than the index after a crash between the two writes).
"""

from __future__ import annotations

from pathlib import Path

import tantivy

from logfactory.store.engine import StoreStats
from logfactory.store.engines.embedded.partitions import (
    INDEX_DIR,
    day_dirs,
    dir_bytes,
    read_span,
)
from logfactory.store.engines.embedded.schema import CHECKPOINT_KIND, SCHEMA, is_panic, matches

__all__ = ["day_count", "searcher_count", "store_stats"]


def searcher_count(searcher: tantivy.Searcher) -> int:
    """Documents in a day's index, checkpoints excluded."""
    marks = tantivy.Query.term_query(SCHEMA, "kind", CHECKPOINT_KIND)
    return int(searcher.num_docs) - matches(searcher, marks)


def day_count(folder: Path) -> int:
    """Documents committed in the day at ``folder`` (0 when it has no readable index)."""
    index_dir = folder / INDEX_DIR
    try:
        if not tantivy.Index.exists(str(index_dir)):
            return 0
        return searcher_count(tantivy.Index.open(str(index_dir)).searcher())
    except BaseException as exc:
        if is_panic(exc) or isinstance(exc, ValueError | OSError):
            return 0
        raise


def store_stats(root: Path) -> StoreStats:
    """Documents, bytes, days and the time range of the store at ``root``."""
    days = day_dirs(root)
    docs = 0
    oldest: int | None = None
    newest: int | None = None
    for name in days:
        folder = root / name
        docs += day_count(folder)
        span = read_span(folder)
        if span is not None:
            oldest = span.min_time if oldest is None else min(oldest, span.min_time)
            newest = span.max_time if newest is None else max(newest, span.max_time)
    return StoreStats(docs, dir_bytes(root) if days else 0, len(days), oldest, newest)
