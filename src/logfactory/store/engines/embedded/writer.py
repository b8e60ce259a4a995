"""The embedded store's writer: documents into their day's tantivy index, each stored once.

One process writes a store (``PATH/writer.lock``, an flock: a second writer is refused with
:class:`StoreUnavailable` naming the holder). Each document goes to the index of its arrival
day (:mod:`.partitions`); each open day has its own tantivy writer (one indexing thread, a
bounded heap); at most :data:`MAX_OPEN_DAYS` are open, the least recently used closed after a
commit.

**Stored once, without a unique index.** tantivy enforces no unique key, and looking every id
up before adding would cost a search per document. Instead each day's index keeps, for every
bus partition, the highest offset it has committed (a checkpoint document, added and replaced
in the *same* tantivy commit as the documents, and a tantivy commit is atomic). A document read
at ``(topic, partition, offset)`` above its day's checkpoint for ``(topic, partition)`` is new;
one at or below it is a replay, and is skipped. This is exact:

- one bus partition's offsets only grow, and the role adds them in order;
- a document's day depends on the document alone (its ``received``), so a replay sends every
  document to the same day as the first time;
- so, for one day and one bus partition, the documents committed are exactly those up to the
  checkpoint: a document at or below it is there already, one above it is not.

A crash between the commits of two days (one committed with its checkpoint, the other not)
is therefore harmless: on replay the first day skips its documents and the second stores
its own. Only a document at or below a checkpoint costs a lookup of its id before it is
skipped: that is a replay (a few batches after a crash), or a bus whose offsets started again
(a bus wiped or a topic made anew while the store was kept), whose new records are then kept,
not lost. What this does not catch is the same id at two different bus offsets above the
checkpoint (a producer that published a record twice): two records on the bus, kept as two.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

import tantivy

from logfactory.errors import StoreUnavailable
from logfactory.store.document import StoredDoc
from logfactory.store.engine import Position, RetentionReport, StoreStats
from logfactory.store.engines.embedded.blob import DayPacker
from logfactory.store.engines.embedded.inventory import day_count, store_stats
from logfactory.store.engines.embedded.partitions import (
    DAY_NS,
    INDEX_DIR,
    Span,
    check_layout,
    day_dirs,
    day_of,
    day_start,
    dir_bytes,
    read_span,
    write_span,
)
from logfactory.store.engines.embedded.schema import (
    CHECKPOINT_KIND,
    SCHEMA,
    checkpoint_doc,
    checkpoint_id,
    checkpoint_of,
    is_panic,
    to_json,
)

__all__ = ["MAX_OPEN_DAYS", "EmbeddedWriter"]

MAX_OPEN_DAYS: Final = 3
DAY_HEAP_BYTES: Final = 64_000_000  # per open day; MAX_OPEN_DAYS of them: under 200 MB
LOCK_FILE: Final = "writer.lock"


def open_index(index_dir: Path) -> tantivy.Index:
    """The day's index, created with the store's schema when new."""
    index_dir.mkdir(parents=True, exist_ok=True)
    if tantivy.Index.exists(str(index_dir)):
        return tantivy.Index.open(str(index_dir))
    return tantivy.Index(SCHEMA, path=str(index_dir))


@dataclass(eq=False)
class _Day:
    """One open day: its index, its tantivy writer, its checkpoints and what is pending."""

    name: str
    folder: Path
    index: tantivy.Index
    writer: tantivy.IndexWriter
    committed: dict[tuple[str, int], int]
    span: Span | None
    pending: dict[tuple[str, int], int] = field(default_factory=dict)
    low: int | None = None
    high: int | None = None

    searcher: tantivy.Searcher | None = None  # of the committed index, for ``holds``
    packer: DayPacker = field(init=False)

    def __post_init__(self) -> None:
        self.packer = DayPacker(self.folder)

    def seen(self, key: tuple[str, int], offset: int, doc_id: str) -> bool:
        """Is the record read at ``offset`` of bus partition ``key`` already here? Above the
        checkpoint it is not (offsets only grow); added since the last commit it is; at or
        below the checkpoint, its id is looked up (a bus whose offsets started again after a
        reset must not lose its records)."""
        if offset <= self.pending.get(key, -1):
            return True
        if offset > self.committed.get(key, -1):
            return False
        return self.holds(doc_id)

    def holds(self, doc_id: str) -> bool:
        if self.searcher is None:
            self.index.reload()
            self.searcher = self.index.searcher()
        query = tantivy.Query.term_query(SCHEMA, "id", doc_id)
        return bool(self.searcher.search(query, 1, count=False).hits)

    def commit(self) -> None:
        if not self.pending:
            return
        assert self.low is not None
        assert self.high is not None
        span = Span(self.low, self.high, uuid.uuid4().hex) if self.span is None else self.span
        span = span.widened(self.low, self.high)
        write_span(self.folder, span)  # before the commit: wider than the index, never narrower
        for (topic, partition), offset in self.pending.items():
            self.writer.delete_documents_by_term("id", checkpoint_id(topic, partition))
            self.writer.add_document(checkpoint_doc(topic, partition, offset))
        self.writer.commit()
        self.committed.update(self.pending)
        self.pending.clear()
        self.searcher = None
        self.span, self.low, self.high = span, None, None


def _checkpoints(index: tantivy.Index) -> dict[tuple[str, int], int]:
    searcher = index.searcher()
    query = tantivy.Query.term_query(SCHEMA, "kind", CHECKPOINT_KIND)
    found: dict[tuple[str, int], int] = {}
    for _score, address in searcher.search(query, 1_000_000, count=False).hits:
        mark = checkpoint_of(searcher.doc(address).to_dict())
        if mark is not None:
            topic, partition, offset = mark
            found[(topic, partition)] = max(offset, found.get((topic, partition), -1))
    return found


class EmbeddedWriter:
    """The :class:`~logfactory.store.engine.StoreWriter` of the embedded (tantivy) engine."""

    def __init__(self, path: Path, *, max_age_s: float, max_size: int) -> None:
        self.path = Path(path)
        self.max_age_ns = int(max_age_s * 1_000_000_000)
        self.max_size = max_size
        self._days: OrderedDict[str, _Day] = OrderedDict()
        self._lock = self._take_lock()
        try:
            check_layout(self.path, claim=True)
        except (StoreUnavailable, OSError) as exc:
            self._release()
            if isinstance(exc, StoreUnavailable):
                raise
            raise StoreUnavailable(
                f"cannot write the store's layout at {self.path}: {exc}"
            ) from exc

    def _take_lock(self) -> IO[str]:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            handle = open(self.path / LOCK_FILE, "a+")  # noqa: SIM115 - held while we write
        except OSError as exc:
            raise StoreUnavailable(f"cannot open the store at {self.path}: {exc}") from exc
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise StoreUnavailable(
                    f"the store at {self.path} is being written by {holder}: one store process "
                    "writes it at a time"
                ) from None
            raise StoreUnavailable(f"cannot lock the store at {self.path}: {exc}") from exc
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        return handle

    # -- writing ------------------------------------------------------------------------------
    def _day(self, name: str) -> _Day:
        day = self._days.get(name)
        if day is not None:
            self._days.move_to_end(name)
            return day
        folder = self.path / name
        try:
            index = open_index(folder / INDEX_DIR)
            writer = index.writer(heap_size=DAY_HEAP_BYTES, num_threads=1)
            committed = _checkpoints(index)
        except (ValueError, OSError) as exc:
            raise StoreUnavailable(f"cannot open the store's day {name}: {exc}") from exc
        day = _Day(name, folder, index, writer, committed, read_span(folder))
        self._days[name] = day
        return day

    def add(self, docs: Sequence[tuple[Position, StoredDoc]]) -> int:
        """Queue ``docs`` in their days' indexes; return how many were not already stored."""
        new = 0
        days: dict[int, _Day] = {}  # by day number: a day is looked up once a batch
        try:
            for (topic, partition, offset), doc in docs:
                number = doc.received // DAY_NS
                day = days.get(number)
                if day is None:
                    day = days[number] = self._day(day_of(doc.received))
                key = (topic, partition)
                if day.seen(key, offset, doc.id):
                    continue
                day.writer.add_json(to_json(doc, day.packer))
                day.pending[key] = offset
                moment = doc.time
                if day.low is None or moment < day.low:
                    day.low = moment
                if day.high is None or moment > day.high:
                    day.high = moment
                new += 1
        except BaseException as exc:
            if isinstance(exc, StoreUnavailable):
                raise
            if not (is_panic(exc) or isinstance(exc, ValueError | OSError)):
                raise
            self._reset()
            raise StoreUnavailable(f"the store could not take a record: {exc}") from exc
        return new

    def commit(self) -> None:
        """Commit every day with pending documents (with their checkpoints). On failure
        (disk full, I/O error) everything uncommitted is dropped and StoreUnavailable raised:
        the role adds the same batch again."""
        for name in sorted(self._days):
            try:
                self._days[name].commit()
            except BaseException as exc:
                if not (is_panic(exc) or isinstance(exc, ValueError | OSError)):
                    raise
                self._reset()
                raise StoreUnavailable(f"the store could not commit day {name}: {exc}") from exc
        while len(self._days) > MAX_OPEN_DAYS:
            _name, day = self._days.popitem(last=False)
            self._close_day(day)

    def _close_day(self, day: _Day) -> None:
        with contextlib.suppress(ValueError):  # already closed: nothing left to merge
            day.writer.wait_merging_threads()

    def _reset(self) -> None:
        """Forget every open day and what is pending in it (after an engine failure)."""
        for day in self._days.values():
            try:  # a writer is closed here, not when garbage collected: its lock goes now
                day.writer.rollback()
                day.writer.wait_merging_threads()
            except BaseException as exc:  # a killed writer cannot roll back: it is dropped
                if not (is_panic(exc) or isinstance(exc, ValueError | OSError)):
                    raise
        self._days.clear()

    # -- retention ----------------------------------------------------------------------------
    def _drop(self, name: str) -> tuple[int, int]:
        """Remove a day; return (documents, bytes) it held."""
        day = self._days.pop(name, None)
        if day is not None:
            day.writer.rollback()
            self._close_day(day)  # no merge may write into the folder once it is gone
        folder = self.path / name
        docs, size = day_count(folder), dir_bytes(folder)
        shutil.rmtree(folder, ignore_errors=True)
        return docs, size

    def apply_retention(self, now_ns: int) -> RetentionReport:
        """Drop days wholly older than the age limit (by arrival), then the oldest days while
        the store is over the size limit. The current day (and any later one) is never
        dropped."""
        today = day_of(now_ns)
        cutoff = now_ns - self.max_age_ns
        dropped: list[str] = []
        docs = freed = 0
        days = [name for name in day_dirs(self.path) if name < today]
        for name in days:
            if day_start(name) + DAY_NS <= cutoff:
                gone_docs, gone_bytes = self._drop(name)
                dropped.append(name)
                docs, freed = docs + gone_docs, freed + gone_bytes
        if self.max_size > 0:
            total = dir_bytes(self.path)
            for name in days:
                if total <= self.max_size:
                    break
                if name in dropped:
                    continue
                gone_docs, gone_bytes = self._drop(name)
                dropped.append(name)
                docs, freed, total = docs + gone_docs, freed + gone_bytes, total - gone_bytes
        return RetentionReport(tuple(dropped), docs, freed)

    # -- the rest -----------------------------------------------------------------------------
    def stats(self) -> StoreStats:
        return store_stats(self.path)

    def close(self) -> None:
        """Commit what is pending, wait for tantivy's merges, release the lock."""
        try:
            self.commit()
        finally:
            for day in self._days.values():
                self._close_day(day)
            self._days.clear()
            self._release()

    def _release(self) -> None:
        if not self._lock.closed:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
