"""Counts of whole days, computed once from each day's index and kept until that index changes.

Top values and histograms over days are asked again and again (the console's dashboards, the
CLI's ``top``) with no filter, while a closed day's index no longer changes. So a day's answer
to "every record" is computed once and kept in memory:

- **terms** of a keyword column (``host``, ``severity``, ``type``, ``pattern``...; a decoded
  field's values are not kept: there may be any number of fields, each with up to
  :data:`~.aggregates.TERMS_PER_DAY` values a day): every value and its count, the count
  left out past that many values, the records without a value: what a live terms pass over
  the day returns;
- **minutes**: the records per minute of ``time`` (a histogram whose interval is whole minutes
  adds them up into its buckets, each minute falling wholly in one bucket).

Contracts:

- **The rows are the truth.** Counts are computed *from the index* (the same aggregation a
  live query runs), never written beside it, so there is no count file to go stale, to be
  lost, or to disagree with the rows after a crash between the index's commit and its own.
- **Kept per index state.** A day's state is its folder's token (new each time the folder is
  made) and its index's commit opstamp (``meta.json``, new with every commit: added records, a
  replay's deletes, a merge). The state is read *before* the searcher is reloaded, so counts
  kept under a state were computed from that state or a newer one; a newer one bumps the
  opstamp, and the next query computes them again. A late record or a replay into an old day
  is a commit into that day: its counts are computed anew.
- **Only what the counts can serve.** A query served from counts has no filter (match all).
  A day wholly inside its window (its span of ``time``, never narrower than what the index
  holds) is answered from its counts alone. A day the window cuts (``-7d`` from now cuts the
  first and last days) is answered in pieces: a histogram takes the minutes wholly inside the
  window from the counts and the two pieces shorter than a minute at the window's ends live;
  top values take the day's counts less a live pass over the part outside the window when
  that part is the smaller (the minutes say how many records each side holds), else a live
  pass over the part inside. A filtered query, and the day still being written (today, UTC: it
  changes with every commit, so counting it whole each time would cost more than the live
  pass), are aggregated live.
"""

from __future__ import annotations

import json
import time as clock
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import tantivy

from logfactory.store.engine import Bucket, Histogram
from logfactory.store.engines.embedded import aggregates
from logfactory.store.engines.embedded.compile import compile_query, visible
from logfactory.store.engines.embedded.paging import Source
from logfactory.store.engines.embedded.partitions import INDEX_DIR, Span, day_of
from logfactory.store.engines.embedded.schema import FAST_KEYWORDS
from logfactory.store.query.tree import MatchAll, Query

__all__ = ["MINUTE", "CountCache", "Counted", "DayCounts", "Terms", "index_state"]

MINUTE: Final = 60 * 1_000_000_000
Terms = tuple[Counter[str], int, int]
"""A day's values of a column and their counts, how many were left out, how many lack it."""

_EVERYTHING: Final = visible(tantivy.Query.all_query())


def index_state(day_dir: Path, token: str) -> str | None:
    """The day's state: its folder's token and its index's last commit (``None`` when the
    index has no readable commit yet: the day is then aggregated live)."""
    try:
        meta = json.loads((day_dir / INDEX_DIR / "meta.json").read_text())
        return f"{token}:{int(meta['opstamp'])}"
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass(slots=True)
class DayCounts:
    """What is known of one day in one state; filled column by column as queries ask."""

    state: str
    terms: dict[str, Terms] = field(default_factory=dict)
    minutes: Counter[int] | None = None

    def whole_terms(self, source: Source, column: str) -> Terms:
        """The whole day's terms of ``column``, computed on first ask in this state."""
        found = self.terms.get(column)
        if found is None:
            found = self.terms[column] = aggregates.day_terms(source, _EVERYTHING, column)
        return found

    def whole_minutes(self, source: Source) -> Counter[int]:
        """The whole day's records per minute of ``time`` (keys: minutes since 1970)."""
        if self.minutes is None:
            spec = {"m": {"histogram": {"field": "sec", "interval": 60}}}
            found: Counter[int] = Counter()
            for bucket in source.searcher.aggregate(_EVERYTHING, spec)["m"]["buckets"]:
                if bucket["doc_count"]:
                    found[round(bucket["key"] / 60)] += int(bucket["doc_count"])
            self.minutes = found
        return self.minutes


def _inside(span: Span, query: Query) -> bool:
    """Does every record the day may hold fall in the query's window?"""
    return (query.start is None or span.min_time >= query.start) and (
        query.end is None or span.max_time < query.end
    )


def _minute_inside(minute: int, query: Query) -> bool:
    low = minute * MINUTE
    return (query.start is None or low >= query.start) and (
        query.end is None or low + MINUTE <= query.end
    )


@dataclass(frozen=True, slots=True)
class Counted:
    """A day of a query answered from counts: wholly inside the window, or cut by it."""

    source: Source
    day: DayCounts
    query: Query
    whole: bool

    def minutes(self) -> Counter[int]:
        """The day's records per minute, of the minutes wholly inside the window."""
        every = self.day.whole_minutes(self.source)
        if self.whole:
            return every
        return Counter({m: n for m, n in every.items() if _minute_inside(m, self.query)})

    def terms(self, column: str) -> Terms:
        """The day's terms of ``column`` within the window."""
        if column not in FAST_KEYWORDS:
            return aggregates.day_terms(self.source, compile_query(self.query), column)
        whole = self.day.whole_terms(self.source, column)
        if self.whole:
            return whole
        every = self.day.whole_minutes(self.source)
        inside = sum(n for m, n in every.items() if _minute_inside(m, self.query))
        if whole[1] or inside * 2 < sum(every.values()):
            return aggregates.day_terms(self.source, compile_query(self.query), column)
        values, left, missing = Counter(whole[0]), 0, whole[2]
        for outside in _outside(self.query):
            less, less_left, less_missing = aggregates.day_terms(self.source, outside, column)
            values.subtract(less)
            left += less_left
            missing -= less_missing
        if left:  # the part outside had too many values to subtract them all
            return aggregates.day_terms(self.source, compile_query(self.query), column)
        return +values, 0, missing


def _outside(query: Query) -> list[tantivy.Query]:
    """The parts of time outside the query's window."""
    out: list[tantivy.Query] = []
    if query.start is not None:
        out.append(compile_query(Query(MatchAll(), None, query.start)))
    if query.end is not None:
        out.append(compile_query(Query(MatchAll(), query.end, None)))
    return out


def _edges(query: Query) -> list[tuple[int, int]]:
    """The pieces of the window shorter than a minute at its ends (none when it starts and
    ends on a minute)."""
    if query.start is None or query.end is None:
        return []
    first = min(query.end, -(-query.start // MINUTE) * MINUTE)
    last = max(first, query.end - query.end % MINUTE)
    return [(low, high) for low, high in ((query.start, first), (last, query.end)) if low < high]


def histogram(
    live: list[Source], counted: list[Counted], query: Query, interval: int, timeout_s: float
) -> Histogram:
    """A histogram of whole minutes: counted days' minutes inside the window, their pieces of
    the window's end minutes and every live day aggregated live."""
    deadline = clock.monotonic() + timeout_s
    where = compile_query(query)
    minutes = [day.minutes for day in counted]
    out = aggregates.histogram(live, query, where, interval, timeout_s, counted=minutes)
    cut = [day.source for day in counted if not day.whole]
    slots = {bucket.key: i for i, bucket in enumerate(out.buckets)}
    for low, high in _edges(query) if cut else []:
        piece = Query(MatchAll(), low, high)
        left = max(0.0, deadline - clock.monotonic())
        found = aggregates.histogram(cut, piece, compile_query(piece), interval, left)
        out.timed_out = out.timed_out or found.timed_out
        for bucket in found.buckets:
            if bucket.count:
                i = slots[bucket.key]
                out.buckets[i] = Bucket(bucket.key, out.buckets[i].count + bucket.count)
    return out


class CountCache:
    """Counts of whole days by index state, for one reader (see the module's contracts)."""

    def __init__(self, today: Callable[[], str] | None = None) -> None:
        self._today = today or (lambda: day_of(clock.time_ns()))
        self._days: dict[str, DayCounts] = {}

    def split(
        self, query: Query, sources: Iterable[Source], states: dict[str, str]
    ) -> tuple[list[Source], list[Counted]]:
        """The days to aggregate live and the days to answer from counts (their counts made
        empty when the day's state changed)."""
        live: list[Source] = []
        counted: list[Counted] = []
        today = self._today()
        servable = isinstance(query.where, MatchAll)
        for source in sources:
            state = states.get(source.name)
            if not servable or state is None or source.name >= today:
                live.append(source)
                continue
            known = self._days.get(source.name)
            if known is None or known.state != state:
                known = self._days[source.name] = DayCounts(state)
            counted.append(Counted(source, known, query, _inside(source.span, query)))
        return live, counted

    def forget(self, kept: Iterable[str]) -> None:
        """Drop the counts of days no longer in the store."""
        keep = set(kept)
        for name in set(self._days) - keep:
            del self._days[name]
