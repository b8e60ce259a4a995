"""What every store engine honours: a writer for the store role, a reader for queries.

Two implementations (``engines/embedded``: tantivy; ``engines/opensearch``) and one contract
suite (``tests/contract/test_store_*``) that runs the same queries on both over the same data
and expects the same answers.

Writer contract (one writer per store, in the store role's process):

* :meth:`StoreWriter.add` takes documents with the bus position each was read from. Storing
  is **idempotent by id**: a document whose id the store already holds (a replay after a
  crash between the engine's commit and the bus's) is not stored twice.
* :meth:`StoreWriter.commit` returns once everything added is durable and searchable; only
  then does the role commit its bus offsets. A crash before it returns loses nothing: the bus
  still holds the records and the role reads them again.
* An engine that cannot take writes (down, disk full, read-only) raises
  :class:`~logfactory.errors.StoreUnavailable`; the role pauses, says why in its health and
  metrics, and retries the same batch.

Reader contract (any number, in any process, while the writer writes):

* Results are newest first: by ``time`` descending, ties by ``id`` descending, so pages are
  stable. A :class:`Cursor` names the last hit of a page; the next page starts after it.
* Every read has a deadline (``timeout_s``) and a cap; an answer cut short says so
  (``timed_out``, ``capped``) rather than stalling ingest or exhausting memory.
* A bad query raises :class:`~logfactory.errors.QueryError`; an engine that cannot answer,
  :class:`~logfactory.errors.StoreUnavailable`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from logfactory.errors import QueryError
from logfactory.store.document import StoredDoc
from logfactory.store.query.tree import Query

__all__ = [
    "Bucket",
    "Context",
    "Cursor",
    "Histogram",
    "Position",
    "RetentionReport",
    "SearchPage",
    "StoreReader",
    "StoreStats",
    "StoreWriter",
    "TopValues",
]

Position = tuple[str, int, int]
"""Where on the bus a document was read: (topic, partition, offset)."""


@dataclass(frozen=True, slots=True)
class Cursor:
    """The last hit of a page (its ``time`` and ``id``); the next page begins after it."""

    time: int
    id: str

    def encode(self) -> str:
        """Opaque text for clients: URL-safe base64 of ``time:id``."""
        raw = f"{self.time}:{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """Raises :class:`QueryError` for text no page handed out."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            time, _, ident = raw.partition(":")
            if not ident:
                raise ValueError("no id")
            return cls(int(time), ident)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise QueryError("the cursor is not one a search returned; start again") from None


@dataclass(slots=True)
class SearchPage:
    """One page of hits, newest first.

    ``total`` counts every match (``None`` when the engine could not count within the
    deadline); ``next`` is set when more hits may follow."""

    hits: list[StoredDoc]
    next: Cursor | None = None
    total: int | None = None
    timed_out: bool = False
    capped: bool = False


@dataclass(frozen=True, slots=True)
class Bucket:
    key: int | str  # a bucket's start (UTC ns) for a histogram, a value for top values
    count: int


@dataclass(slots=True)
class Histogram:
    """Counts per time bucket over the query's window, oldest first, empty buckets included
    (``interval`` ns wide; the first starts at the window's start rounded down)."""

    interval: int
    buckets: list[Bucket] = dataclasses.field(default_factory=list)
    timed_out: bool = False


@dataclass(slots=True)
class TopValues:
    """The most frequent values of a field among the matches, most frequent first; ``other``
    counts matches with any other value, ``missing`` those without the field."""

    field: str
    buckets: list[Bucket] = dataclasses.field(default_factory=list)
    other: int = 0
    missing: int = 0
    timed_out: bool = False


@dataclass(slots=True)
class Context:
    """A record and the records just before and after it on the same host, oldest first."""

    anchor: StoredDoc
    before: list[StoredDoc]
    after: list[StoredDoc]


@dataclass(frozen=True, slots=True)
class RetentionReport:
    dropped_partitions: tuple[str, ...] = ()
    dropped_docs: int = 0
    bytes_freed: int = 0


@dataclass(frozen=True, slots=True)
class StoreStats:
    """What the store holds: documents, bytes on disk, partitions (days or indices), and the
    oldest and newest ``time`` (UTC ns; ``None`` when empty)."""

    docs: int
    bytes: int
    partitions: int
    oldest: int | None
    newest: int | None


class StoreWriter(Protocol):
    def add(self, docs: Sequence[tuple[Position, StoredDoc]]) -> int:
        """Queue documents for the next commit; return how many are new (not already held)."""

    def commit(self) -> None:
        """Make everything added durable and searchable; raises StoreUnavailable."""

    def apply_retention(self, now_ns: int) -> RetentionReport:
        """Drop what is older than the age limit, then the oldest until under the size limit."""

    def stats(self) -> StoreStats: ...

    def close(self) -> None:
        """Commit what is pending and release the engine (the embedded writer's lock)."""


@runtime_checkable
class RefusingWriter(Protocol):
    """A writer whose engine can refuse a document for good (OpenSearch: a value it will
    never take). Rather than retry that batch forever, it reports the document here after
    :meth:`StoreWriter.add` and the role sends its message to the dead letters."""

    def take_refused(self) -> list[tuple[Position, str]]:
        """The documents refused for good since the last call, with the reason."""


class StoreReader(Protocol):
    def search(
        self,
        query: Query,
        limit: int,
        after: Cursor | None = None,
        timeout_s: float = 10.0,
    ) -> SearchPage:
        """Hits newest first, up to ``limit``, starting after ``after``."""

    def scan(self, query: Query, cap: int, timeout_s: float) -> Iterator[StoredDoc]:
        """Every match newest first, up to ``cap`` (an export): pages fetched as consumed, so
        memory stays bounded. Stops at ``timeout_s`` between pages."""

    def count(self, query: Query, timeout_s: float = 10.0) -> int: ...

    def histogram(self, query: Query, interval: int, timeout_s: float = 10.0) -> Histogram:
        """Counts per ``interval`` ns; the query must have a window (start and end)."""

    def top(self, query: Query, field: str, size: int, timeout_s: float = 10.0) -> TopValues:
        """The ``size`` most frequent values of ``field`` among the matches."""

    def distinct(self, query: Query, field: str, timeout_s: float = 10.0) -> int:
        """How many different values ``field`` takes among the matches (may be approximate
        above 3,000, as HyperLogLog counts are on both engines)."""

    def context(self, doc_id: str, before: int, after: int) -> Context | None:
        """``before`` and ``after`` records around ``doc_id`` on its host, by time; ``None``
        when no record has that id."""

    def stats(self) -> StoreStats: ...

    def close(self) -> None: ...
