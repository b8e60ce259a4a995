"""Histogram bucket widths: chosen from the window (about 60-120 buckets), or written by a person.

:func:`auto_interval` picks, from a list of round widths (1s 2s 5s 10s 15s 30s 1m 2m 5m 10m 15m
30m 1h 2h 3h 6h 12h 1d 2d 7d 30d), the smallest that cuts the window into at most
:data:`TARGET_BUCKETS` buckets, so a chart has enough bars to show a shape and few enough to
draw. A window longer than 120 x 30 days (about ten years) gets a whole multiple of 30 days that
still gives at most 120 buckets: it never fails, however long the window.

:func:`parse_interval` reads a width a person wrote (``30s``, ``5m``, ``1h``, ``1d``, ``1w``);
:func:`check_buckets` refuses a width that would cut the window into more than
:data:`MAX_BUCKETS` buckets (``1s`` over a week would be 604,800), the cap that keeps one
histogram from exhausting memory.
"""

from __future__ import annotations

import re
from typing import Final

from logfactory.errors import QueryError
from logfactory.store.query.timerange import UNIT_NS

__all__ = [
    "MAX_BUCKETS",
    "ROUND_WIDTHS",
    "TARGET_BUCKETS",
    "auto_interval",
    "bucket_count",
    "check_buckets",
    "format_interval",
    "parse_interval",
]

TARGET_BUCKETS: Final = 120
MAX_BUCKETS: Final = 10_000

_S, _M, _H, _D = UNIT_NS["s"], UNIT_NS["m"], UNIT_NS["h"], UNIT_NS["d"]
ROUND_WIDTHS: Final[tuple[int, ...]] = (
    *(n * _S for n in (1, 2, 5, 10, 15, 30)),
    *(n * _M for n in (1, 2, 5, 10, 15, 30)),
    *(n * _H for n in (1, 2, 3, 6, 12)),
    *(n * _D for n in (1, 2, 7, 30)),
)
"""The widths :func:`auto_interval` chooses from, in nanoseconds, narrowest first."""

_INTERVAL = re.compile(r"(\d{1,9})([smhdw])")
_HINT = "write 30s, 5m, 1h or 1d"


def bucket_count(start_ns: int, end_ns: int, width_ns: int) -> int:
    """How many buckets of ``width_ns`` cover ``[start_ns, end_ns)`` (at least 1)."""
    return max(1, -(-(end_ns - start_ns) // width_ns))


def auto_interval(start_ns: int, end_ns: int) -> int:
    """The bucket width for a histogram over ``[start_ns, end_ns)``: the smallest round width
    giving at most :data:`TARGET_BUCKETS` buckets (1s for an empty or reversed window)."""
    for width in ROUND_WIDTHS:
        if bucket_count(start_ns, end_ns, width) <= TARGET_BUCKETS:
            return width
    month = ROUND_WIDTHS[-1]
    return month * bucket_count(start_ns, end_ns, month * TARGET_BUCKETS)


def parse_interval(text: str) -> int:
    """``"5m"`` -> its nanoseconds; units ``s m h d w``, a whole number of at least 1."""
    match = _INTERVAL.fullmatch(text.strip())
    if match is None:
        raise QueryError(f"unknown interval {text!r}: {_HINT}")
    count = int(match.group(1))
    if count == 0:
        raise QueryError(f"the interval {text!r} is empty: {_HINT}")
    return count * UNIT_NS[match.group(2)]


def format_interval(width_ns: int) -> str:
    """Nanoseconds -> the shortest exact text :func:`parse_interval` reads (``300s`` -> ``5m``);
    a width of no whole second is written in seconds with a fraction (``0.5s``)."""
    for unit in "wdhms":
        size = UNIT_NS[unit]
        if width_ns % size == 0:
            return f"{width_ns // size}{unit}"
    return f"{width_ns / UNIT_NS['s']:g}s"


def check_buckets(start_ns: int, end_ns: int, width_ns: int) -> None:
    """Refuse a width cutting ``[start_ns, end_ns)`` into more than :data:`MAX_BUCKETS`."""
    count = bucket_count(start_ns, end_ns, width_ns)
    if count > MAX_BUCKETS:
        wider = next(
            (w for w in ROUND_WIDTHS if bucket_count(start_ns, end_ns, w) <= MAX_BUCKETS),
            auto_interval(start_ns, end_ns),
        )
        raise QueryError(
            f"the interval {format_interval(width_ns)} cuts this window into {count:,} buckets;"
            f" at most {MAX_BUCKETS:,}: write {format_interval(wider)} or more"
        )
