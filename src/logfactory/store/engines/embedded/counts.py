"""Counts of whole days, computed once from each day's index and kept until that index changes.

Top values and histograms over days are asked again and again (the console's dashboards, the
CLI's ``top``) with no filter, while a closed day's index no longer changes. So a day's answer
to "every record" is computed once and kept in memory:

- **terms** of a keyword column (``host``, ``severity``, ``type``, ``pattern``...): every value
  and its count, the count left out past :data:`~.aggregates.TERMS_PER_DAY` values, the records
  without a value: what a live terms pass over the day returns;
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
- **Only what the counts can serve.** A query served from counts has no filter (match all),
  and the day lies wholly inside its window (its span of ``time``, which is never narrower
  than what the index holds). Every other day (the window's edge days, a filtered query) and
  the day still being written (today, UTC: it changes with every commit, so counting it whole
  each time would cost more than the live pass) are aggregated live.
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

from logfactory.store.engines.embedded.compile import visible
from logfactory.store.engines.embedded.paging import Source
from logfactory.store.engines.embedded.partitions import INDEX_DIR, Span, day_of
from logfactory.store.query.tree import MatchAll, Query

__all__ = ["MINUTE", "CountCache", "DayCounts", "Terms", "index_state"]

MINUTE: Final = 60 * 1_000_000_000
Terms = tuple[Counter[str], int, int]
"""A day's values of a column and their counts, how many were left out, how many lack it."""
TermsPass = Callable[[Source, tantivy.Query, str], Terms]
"""The live terms pass (:func:`~.aggregates.day_terms`), handed in to share one definition."""

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


def _inside(span: Span, query: Query) -> bool:
    """Does every record the day may hold fall in the query's window?"""
    return (query.start is None or span.min_time >= query.start) and (
        query.end is None or span.max_time < query.end
    )


class CountCache:
    """Counts of whole days by index state, for one reader (see the module's contracts)."""

    def __init__(self, today: Callable[[], str] | None = None) -> None:
        self._today = today or (lambda: day_of(clock.time_ns()))
        self._days: dict[str, DayCounts] = {}

    def split(
        self, query: Query, sources: Iterable[Source], states: dict[str, str]
    ) -> tuple[list[Source], list[tuple[Source, DayCounts]]]:
        """The days to aggregate live and the days to answer from counts (with their counts,
        made empty when the day's state changed)."""
        live: list[Source] = []
        counted: list[tuple[Source, DayCounts]] = []
        today = self._today()
        servable = isinstance(query.where, MatchAll)
        for source in sources:
            state = states.get(source.name)
            if (
                not servable
                or state is None
                or source.name >= today
                or not _inside(source.span, query)
            ):
                live.append(source)
            else:
                known = self._days.get(source.name)
                if known is None or known.state != state:
                    known = self._days[source.name] = DayCounts(state)
                counted.append((source, known))
        return live, counted

    def forget(self, kept: Iterable[str]) -> None:
        """Drop the counts of days no longer in the store."""
        keep = set(kept)
        for name in set(self._days) - keep:
            del self._days[name]

    @staticmethod
    def terms(source: Source, day: DayCounts, column: str, terms_pass: TermsPass) -> Terms:
        """The whole day's terms of ``column``, computed on first ask in this state."""
        found = day.terms.get(column)
        if found is None:
            found = day.terms[column] = terms_pass(source, _EVERYTHING, column)
        return found

    @staticmethod
    def minutes(source: Source, day: DayCounts) -> Counter[int]:
        """The whole day's records per minute of ``time`` (keys: minutes since 1970)."""
        if day.minutes is None:
            spec = {"m": {"histogram": {"field": "sec", "interval": 60}}}
            found: Counter[int] = Counter()
            for bucket in source.searcher.aggregate(_EVERYTHING, spec)["m"]["buckets"]:
                if bucket["doc_count"]:
                    found[round(bucket["key"] / 60)] += int(bucket["doc_count"])
            day.minutes = found
        return day.minutes
