"""Pages of hits across days, in the exact order (time, then id), both ways.

tantivy sorts a search by one fast field: ``time``. The contract's order is ``time`` then
``id`` (descending for results, ascending for the lines after a context's anchor), and ``id``
is not a fast field. So a page is built in two steps:

1. every day searched for its top ``limit`` by ``time`` beyond the cursor's time, the hits
   merged by time: every hit strictly before the page's last time (its *edge*) is then known
   to be in the page, whole time groups at a time;
2. the group at the edge time (and, with a cursor, the group at the cursor's own time, whose
   ids beyond the cursor's id come first) is fetched whole, ordered by id, and cut.

Step 2 is bounded: a group of more than :data:`GROUP_CAP` documents with the same nanosecond
is cut there and the page says ``capped``. Fetching a group costs one search per day whose span
holds that time, usually one.

A cursor names the last hit of a page (its time and id), so a page is stable under concurrent
writes: a document stored later with an older time appears in its place on a later page,
never twice and never shifting what was already handed out.
"""

from __future__ import annotations

import time as clock
from dataclasses import dataclass, field

import tantivy

from logfactory.store.document import StoredDoc
from logfactory.store.engine import Cursor
from logfactory.store.engines.embedded.blob import DayUnpacker
from logfactory.store.engines.embedded.compile import time_range
from logfactory.store.engines.embedded.partitions import Span
from logfactory.store.engines.embedded.schema import hit_count

__all__ = ["GROUP_CAP", "Page", "Source", "fetch_page"]

GROUP_CAP = 10_000
_MUST = tantivy.Occur.Must


@dataclass(frozen=True, slots=True)
class Source:
    """One day ready to search: its name, a fresh searcher, the span of times it holds, and
    what turns its hits back into StoredDocs."""

    name: str
    searcher: tantivy.Searcher
    span: Span
    unpacker: DayUnpacker

    def doc(self, address: tantivy.DocAddress) -> StoredDoc:
        """The StoredDoc at ``address`` (a hit of this day's searcher)."""
        return self.unpacker.unpack(self.searcher.doc(address)["blob"][0])


@dataclass(slots=True)
class Page:
    docs: list[StoredDoc] = field(default_factory=list)
    remaining: int = 0  # matches beyond the cursor, the page included (when counted)
    more: bool = False  # matches may follow the page
    timed_out: bool = False
    capped: bool = False


def _and(*queries: tantivy.Query) -> tantivy.Query:
    return tantivy.Query.boolean_query([(_MUST, q) for q in queries])


def _order(doc: StoredDoc) -> tuple[int, str]:
    return doc.time, doc.id


@dataclass(slots=True)
class _Walk:
    sources: list[Source]
    where: tantivy.Query
    desc: bool
    deadline: float
    page: Page = field(default_factory=Page)

    def late(self) -> bool:
        if clock.monotonic() > self.deadline:
            self.page.timed_out = True
        return self.page.timed_out

    def group(self, moment: int) -> list[StoredDoc]:
        """Every match at exactly ``moment`` (up to GROUP_CAP), by id in the walk's order."""
        docs: list[StoredDoc] = []
        query = _and(self.where, time_range("time", moment, moment))
        for source in self.sources:
            if not source.span.min_time <= moment <= source.span.max_time:
                continue
            found = source.searcher.search(query, GROUP_CAP, count=True)
            if hit_count(found) > GROUP_CAP:
                self.page.capped = True
            docs.extend(source.doc(a) for _s, a in found.hits)
        docs.sort(key=lambda d: d.id, reverse=self.desc)
        return docs

    def beyond(self, moment: int | None) -> tantivy.Query:
        if moment is None:
            return self.where
        if self.desc:
            return _and(self.where, time_range("time", None, moment - 1))
        return _and(self.where, time_range("time", moment + 1, None))

    def usable(self, source: Source, moment: int | None) -> bool:
        if moment is None:
            return True
        return source.span.min_time < moment if self.desc else source.span.max_time > moment


def fetch_page(
    sources: list[Source],
    where: tantivy.Query,
    limit: int,
    after: Cursor | None,
    *,
    desc: bool = True,
    timeout_s: float = 10.0,
    count: bool = True,
) -> Page:
    """Up to ``limit`` matches of ``where`` after ``after``, in (time, id) order (descending
    when ``desc``). With ``count``, ``remaining`` is how many matches lie beyond the cursor (a
    pass over all of them); without, only ``more`` says whether any may follow."""
    walk = _Walk(sources, where, desc, clock.monotonic() + timeout_s)
    page = walk.page
    first: list[StoredDoc] = []
    if after is not None:
        mark = after.id
        first = [d for d in walk.group(after.time) if (d.id < mark if desc else d.id > mark)]
    moment = None if after is None else after.time
    query = walk.beyond(moment)
    order = tantivy.Order.Desc if desc else tantivy.Order.Asc
    hits: list[tuple[int, int, tantivy.DocAddress]] = []
    cut: list[int] = []  # last times of days that may hold more than they gave
    for number, source in enumerate(sources):
        if walk.late():
            break
        if not walk.usable(source, moment):
            continue
        found = source.searcher.search(query, limit, count=count, order_by_field="time",
                                       order=order)  # fmt: skip
        page.remaining += hit_count(found)
        hits.extend((int(key), number, address) for key, address in found.hits)
        full = hit_count(found) > len(found.hits) if count else len(found.hits) >= limit
        if full and found.hits:
            cut.append(int(found.hits[-1][0]))
    page.remaining += len(first)
    page.docs = first[:limit]
    need = limit - len(page.docs)
    page.more = len(first) > limit or bool(cut) or page.timed_out
    if need <= 0 or not hits:
        page.more = page.more or bool(hits)
        return page
    hits.sort(key=lambda hit: hit[0], reverse=desc)
    chosen = hits[:need]
    edge = chosen[-1][0]
    inside = [sources[n].doc(a) for t, n, a in chosen if t != edge]
    inside.sort(key=_order, reverse=desc)
    whole = edge not in cut and all(t != edge for t, _n, _a in hits[need:])
    if whole:
        at_edge = [sources[n].doc(a)
                   for t, n, a in chosen if t == edge]  # fmt: skip
        at_edge.sort(key=lambda d: d.id, reverse=desc)
    else:
        at_edge = walk.group(edge)
    taken = need - len(inside)
    page.docs.extend(inside)
    page.docs.extend(at_edge[:taken])
    page.more = page.more or len(hits) > need or len(at_edge) > taken
    return page
