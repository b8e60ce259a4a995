"""Histograms, top values and distinct counts over the day indexes (tantivy aggregations).

- **histogram**: tantivy's histogram aggregation per day, summed. Its keys are f64, and
  nanoseconds since 1970 do not fit f64's 53 bits, so a whole-second interval buckets the
  ``sec`` column (``time`` in seconds, exact in f64): counts equal a Python count to the
  document. A sub-second interval buckets ``time`` itself, exact to about 256 ns.
- **top**: a terms aggregation per day (up to :data:`TERMS_PER_DAY` values each, exact below
  that), summed across days. A decoded field's values are shown as text, so the number ``22``
  and the text ``"22"`` are one value, as ``port:22`` finds both; booleans are ``true`` and
  ``false``. ``other`` counts the matches' other values, ``missing`` the matches without it.
- **distinct**: the union of each day's values (exact up to :data:`TERMS_PER_DAY` values a
  day); past that, tantivy's HyperLogLog estimate of the largest day, a lower bound.

Each takes, beside the days to aggregate live, the days answered from counts (``counted``:
:mod:`~.counts`, whole days of a query without a filter): their minutes or terms are added to
the live ones as they are, so both paths give the same numbers.
"""

from __future__ import annotations

import time as clock
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Final

import tantivy

from logfactory.errors import QueryError
from logfactory.store.document import FIELD_PREFIX
from logfactory.store.engine import Bucket, Histogram, TopValues
from logfactory.store.engines.embedded.paging import Source
from logfactory.store.engines.embedded.schema import FAST_KEYWORDS
from logfactory.store.query.tree import Query

__all__ = [
    "MAX_BUCKETS",
    "MAX_TOP",
    "TERMS_PER_DAY",
    "CountedTerms",
    "day_terms",
    "distinct",
    "histogram",
    "top",
]

MAX_BUCKETS: Final = 10_000
MAX_TOP: Final = 1_000
TERMS_PER_DAY: Final = 65_000
SECOND: Final = 1_000_000_000
MINUTE: Final = 60 * SECOND
CountedTerms = tuple[Source, Callable[[str], tuple[Counter[str], int, int]]]
"""A day answered from counts: its source and its whole terms of a column."""


def histogram(
    sources: list[Source],
    query: Query,
    where: tantivy.Query,
    interval: int,
    timeout_s: float,
    counted: Sequence[Callable[[], Counter[int]]] = (),
) -> Histogram:
    """``counted``: days' records per minute, for an interval of whole minutes."""
    if query.start is None or query.end is None:
        raise QueryError("a histogram needs a time range with a start and an end")
    if interval <= 0:
        raise QueryError("a histogram interval must be more than 0")
    first = query.start - query.start % interval
    count = max(0, -(-(query.end - first) // interval))
    if count > MAX_BUCKETS:
        raise QueryError(
            f"an interval of {interval} ns gives {count} buckets over this range; at most "
            f"{MAX_BUCKETS} are allowed: choose a wider interval or a shorter range"
        )
    whole = interval % SECOND == 0
    column, step = ("sec", interval // SECOND) if whole else ("time", interval)
    counts = [0] * count
    deadline = clock.monotonic() + timeout_s
    out = Histogram(interval=interval)
    spec = {"h": {"histogram": {"field": column, "interval": step}}}
    if counted and interval % MINUTE:
        raise ValueError("counts per minute serve only intervals of whole minutes")
    for minutes in counted:
        if clock.monotonic() > deadline:
            out.timed_out = True
            break
        for minute, n in minutes().items():
            slot = (minute * MINUTE - first) // interval
            if 0 <= slot < count:
                counts[slot] += n
    for source in sources:
        if clock.monotonic() > deadline:
            out.timed_out = True
            break
        for bucket in source.searcher.aggregate(where, spec)["h"]["buckets"]:
            start = round(bucket["key"] / step) * interval
            slot = (start - first) // interval
            if 0 <= slot < count:
                counts[slot] += int(bucket["doc_count"])
    out.buckets = [Bucket(first + i * interval, n) for i, n in enumerate(counts)]
    return out


def _column(field: str) -> str:
    if field in FAST_KEYWORDS or (field.startswith(FIELD_PREFIX) and len(field) > 7):
        return field
    raise QueryError(
        f"{field!r} has no values to count: top and distinct take a keyword column "
        f"({', '.join(sorted(FAST_KEYWORDS))}) or a decoded field (fields.NAME)"
    )


def value_text(bucket: dict[str, Any]) -> str:
    """A terms bucket's value as text: ``22`` and ``"22"`` alike, booleans ``true``/``false``."""
    if "key_as_string" in bucket:
        return str(bucket["key_as_string"])
    key = bucket["key"]
    if isinstance(key, float) and key.is_integer():
        return str(int(key))
    return key if isinstance(key, str) else repr(key) if isinstance(key, float) else str(key)


_MISSING: Final = "\x00missing"  # the bucket of matches without the field (no value has NUL)


def day_terms(source: Source, where: tantivy.Query, column: str) -> tuple[Counter[str], int, int]:
    """A day's values of ``column`` among ``where``'s matches, how many value counts were left
    out, and how many matches have no value: one pass."""
    spec = {"t": {"terms": {"field": column, "size": TERMS_PER_DAY,
                            "segment_size": TERMS_PER_DAY, "missing": _MISSING}}}  # fmt: skip
    found = source.searcher.aggregate(where, spec)["t"]
    values: Counter[str] = Counter()
    missing = 0
    for bucket in found["buckets"]:
        if bucket["key"] == _MISSING:
            missing = int(bucket["doc_count"])
        else:
            values[value_text(bucket)] += int(bucket["doc_count"])
    return values, int(found.get("sum_other_doc_count", 0)), missing


def _days_terms(
    sources: list[Source],
    where: tantivy.Query,
    column: str,
    counted: Sequence[CountedTerms],
    deadline: float,
) -> tuple[list[tuple[Source, tuple[Counter[str], int, int]]], bool]:
    """Every day's terms (counted days first, then live ones), and whether the deadline cut
    them short."""
    out: list[tuple[Source, tuple[Counter[str], int, int]]] = []
    for source, terms in counted:
        if clock.monotonic() > deadline:
            return out, True
        out.append((source, terms(column)))
    for source in sources:
        if clock.monotonic() > deadline:
            return out, True
        out.append((source, day_terms(source, where, column)))
    return out, False


def top(
    sources: list[Source],
    where: tantivy.Query,
    field: str,
    size: int,
    timeout_s: float,
    counted: Sequence[CountedTerms] = (),
) -> TopValues:
    if not 1 <= size <= MAX_TOP:
        raise QueryError(f"top values: ask for 1 to {MAX_TOP}, not {size}")
    column = _column(field)
    deadline = clock.monotonic() + timeout_s
    out = TopValues(field=field)
    values: Counter[str] = Counter()
    left_out = 0
    days, out.timed_out = _days_terms(sources, where, column, counted, deadline)
    for _source, (day_values, day_left, day_missing) in days:
        values.update(day_values)
        left_out += day_left
        out.missing += day_missing
    ranked = sorted(values.items(), key=lambda item: (-item[1], item[0]))
    out.buckets = [Bucket(value, n) for value, n in ranked[:size]]
    out.other = sum(n for _value, n in ranked[size:]) + left_out
    return out


def distinct(
    sources: list[Source],
    where: tantivy.Query,
    field: str,
    timeout_s: float,
    counted: Sequence[CountedTerms] = (),
) -> int:
    column = _column(field)
    deadline = clock.monotonic() + timeout_s
    seen: set[str] = set()
    estimate = 0
    days, _late = _days_terms(sources, where, column, counted, deadline)
    for source, (day_values, day_left, _missing) in days:
        seen.update(day_values)
        if day_left:
            estimate = max(estimate, int(source.searcher.cardinality(where, column)))
    return max(len(seen), estimate)
