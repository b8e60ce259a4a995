"""The embedded store's reader: queries over the day indexes, from any process.

Each day's index is opened read-only once and cached; before every query the reader lists the
days (a new one is found, a dropped one forgotten), skips those whose span of times cannot meet
the query's window, and reloads the rest (``reload()``: what the writer committed since shows).
A store folder that does not exist yet is an empty store, not an error.

Top values, distinct counts and histograms of a query without a filter answer whole closed days
from counts kept per index state (:mod:`~.counts`); the rest is aggregated live.

Deadlines are checked between days (and between pages of an export): an answer cut short says
``timed_out``. tantivy failures (a damaged index, a Rust panic) become
:class:`~logfactory.errors.StoreUnavailable`; a query that cannot be run, a
:class:`~logfactory.errors.QueryError`.
"""

from __future__ import annotations

import functools
import time as clock
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ParamSpec, TypeVar

import tantivy

from logfactory.errors import QueryError, StoreError, StoreUnavailable
from logfactory.store.document import StoredDoc
from logfactory.store.engine import (
    Context,
    Cursor,
    Histogram,
    SearchPage,
    StoreStats,
    TopValues,
)
from logfactory.store.engines.embedded import aggregates, counts
from logfactory.store.engines.embedded.blob import DayUnpacker
from logfactory.store.engines.embedded.compile import compile_query, visible
from logfactory.store.engines.embedded.counts import MINUTE, CountCache, index_state
from logfactory.store.engines.embedded.inventory import store_stats
from logfactory.store.engines.embedded.paging import Source, fetch_page
from logfactory.store.engines.embedded.partitions import (
    INDEX_DIR,
    check_layout,
    day_dirs,
    read_span,
)
from logfactory.store.engines.embedded.schema import SCHEMA, is_panic, matches
from logfactory.store.query.tree import Query, Term

__all__ = ["EmbeddedReader"]

P = ParamSpec("P")
R = TypeVar("R")
SCAN_PAGE = 1_000


def _engine_errors(method: Callable[P, R]) -> Callable[P, R]:
    """tantivy's errors and panics -> StoreUnavailable; the store's own errors pass."""

    @functools.wraps(method)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except StoreError:
            raise
        except BaseException as exc:
            if is_panic(exc) or isinstance(exc, ValueError | OSError):
                raise StoreUnavailable(f"the store could not answer: {exc}") from exc
            raise

    return guarded


class EmbeddedReader:
    """The :class:`~logfactory.store.engine.StoreReader` of the embedded (tantivy) engine."""

    def __init__(self, path: Path, *, today: Callable[[], str] | None = None) -> None:
        """``today``: the UTC day being written (``YYYY-MM-DD``; the clock's by default), which
        is aggregated live rather than from counts."""
        self.path = Path(path)
        self._indexes: dict[str, tuple[tantivy.Index, str, DayUnpacker]] = {}
        self._counts = CountCache(today)
        self._layout_checked = False

    def _sources(
        self, start: int | None = None, end: int | None = None, states: dict[str, str] | None = None
    ) -> list[Source]:
        """The days that may hold a time in ``[start, end)``, newest span first. ``states``,
        when given, receives each day's index state, read before its reload (this query's own:
        a reader shared by threads must not mix one query's states with another's searchers)."""
        names = day_dirs(self.path)
        if names and not self._layout_checked:
            check_layout(self.path, claim=False)
            self._layout_checked = True
        for gone in set(self._indexes) - set(names):
            self._indexes.pop(gone, None)  # two queries may both find it gone
        self._counts.forget(names)
        sources: list[Source] = []
        for name in names:
            span = read_span(self.path / name)
            if span is None or not span.meets(start, end):
                continue
            state = None if states is None else index_state(self.path / name, span.token)
            if states is not None and state is not None:
                states[name] = state
            try:
                index, unpacker = self._index(name, span.token)
                index.reload()
                sources.append(Source(name, index.searcher(), span, unpacker))
            except (ValueError, OSError):
                continue  # being created or dropped right now: not there for this query
        sources.sort(key=lambda source: source.span.max_time, reverse=True)
        return sources

    def _index(self, name: str, token: str) -> tuple[tantivy.Index, DayUnpacker]:
        """The day's index and unpacker (its dictionary loaded once), opened once; opened
        again when the day's folder was dropped and made anew since (its span's token
        changed: a replay of records retention dropped)."""
        cached = self._indexes.get(name)
        if cached is not None and cached[1] == token:
            return cached[0], cached[2]
        index = tantivy.Index.open(str(self.path / name / INDEX_DIR))
        unpacker = DayUnpacker(self.path / name)
        self._indexes[name] = (index, token, unpacker)
        return index, unpacker

    @_engine_errors
    def search(
        self, query: Query, limit: int, after: Cursor | None = None, timeout_s: float = 10.0
    ) -> SearchPage:
        if limit < 1:
            raise QueryError("a page holds at least one hit")
        where = compile_query(query)
        sources = self._sources(query.start, query.end)
        # the first page counts its matches as it goes; a later one counts them all once
        first = after is None
        page = fetch_page(sources, where, limit, after, timeout_s=timeout_s, count=first)
        total: int | None = None
        if not page.timed_out:
            total = page.remaining if first else self._count(sources, where)
        more = page.remaining > len(page.docs) if first else page.more
        last = page.docs[-1] if page.docs else None
        return SearchPage(
            hits=page.docs,
            next=Cursor(last.time, last.id) if last is not None and more else None,
            total=total,
            timed_out=page.timed_out,
            capped=page.capped,
        )

    @_engine_errors
    def scan(self, query: Query, cap: int, timeout_s: float) -> Iterator[StoredDoc]:
        """Pages without counting (an export of millions must not count them per page)."""
        deadline = clock.monotonic() + timeout_s
        where = compile_query(query)
        after: Cursor | None = None
        left = cap
        while left > 0:
            remaining = deadline - clock.monotonic()
            if remaining <= 0:
                return
            sources = self._sources(query.start, query.end)
            page = fetch_page(sources, where, min(SCAN_PAGE, left), after,
                              timeout_s=remaining, count=False)  # fmt: skip
            if page.timed_out:  # a page cut short may miss days: none of it is exported
                return
            yield from page.docs
            left -= len(page.docs)
            if not page.more or not page.docs:
                return
            after = Cursor(page.docs[-1].time, page.docs[-1].id)

    @staticmethod
    def _count(sources: list[Source], where: tantivy.Query) -> int:
        return sum(matches(source.searcher, where) for source in sources)

    @_engine_errors
    def count(self, query: Query, timeout_s: float = 10.0) -> int:
        deadline = clock.monotonic() + timeout_s
        where = compile_query(query)
        total = 0
        for source in self._sources(query.start, query.end):
            if clock.monotonic() > deadline:
                raise QueryError(
                    f"counting took longer than the query timeout ({timeout_s:g}s): "
                    "narrow the time range"
                )
            total += matches(source.searcher, where)
        return total

    @_engine_errors
    def histogram(self, query: Query, interval: int, timeout_s: float = 10.0) -> Histogram:
        states: dict[str, str] = {}
        sources = self._sources(query.start, query.end, states)
        if interval > 0 and interval % MINUTE == 0 and query.start is not None:
            live, counted = self._counts.split(query, sources, states)
            return counts.histogram(live, counted, query, interval, timeout_s)
        return aggregates.histogram(sources, query, compile_query(query), interval, timeout_s)

    @_engine_errors
    def top(self, query: Query, field: str, size: int, timeout_s: float = 10.0) -> TopValues:
        live, counted = self._split(query)
        return aggregates.top(live, compile_query(query), field, size, timeout_s, counted)

    @_engine_errors
    def distinct(self, query: Query, field: str, timeout_s: float = 10.0) -> int:
        live, counted = self._split(query)
        return aggregates.distinct(live, compile_query(query), field, timeout_s, counted)

    def _split(self, query: Query) -> tuple[list[Source], list[aggregates.CountedTerms]]:
        """The days to aggregate live, and the days whose terms come from counts."""
        states: dict[str, str] = {}
        sources = self._sources(query.start, query.end, states)
        live, counted = self._counts.split(query, sources, states)
        return live, [(day.source, day.terms) for day in counted]

    @_engine_errors
    def context(self, doc_id: str, before: int, after: int) -> Context | None:
        sources = self._sources()
        lookup = visible(tantivy.Query.term_query(SCHEMA, "id", doc_id))
        anchor: StoredDoc | None = None
        for source in sources:
            found = source.searcher.search(lookup, 1).hits
            if found:
                anchor = source.doc(found[0][1])
                break
        if anchor is None:
            return None
        where = compile_query(Query(Term("host", anchor.host)))
        mark = Cursor(anchor.time, anchor.id)
        older = fetch_page(sources, where, before, mark).docs if before > 0 else []
        newer = fetch_page(sources, where, after, mark, desc=False).docs if after > 0 else []
        return Context(anchor=anchor, before=older[::-1], after=newer)

    @_engine_errors
    def stats(self) -> StoreStats:
        return store_stats(self.path)

    def close(self) -> None:
        self._indexes.clear()
        self._counts.forget(())
