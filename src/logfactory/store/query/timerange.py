"""Time expressions -> UTC nanoseconds: the bounds of a search window and of ``time:`` ranges.

One function, :func:`parse_time_bound`, used for ``--since``/``--until``, the API's ``since``
and ``until`` and every bound of a ``time``/``received`` range inside a query, so a person writes
a time the same way everywhere:

- ``now``;
- a duration back from now: ``-30s``, ``-15m``, ``-2h``, ``-7d``, ``-1w`` (the minus may be left
  out: ``--since 1h`` means an hour ago; a duration never points into the future);
- RFC 3339, with or without a fraction and an offset: ``2026-12-06T10:00:00Z``,
  ``2026-12-06T11:00:00.123456789+01:00``; a time without an offset is UTC; every digit of the
  fraction is kept, down to the nanosecond (further digits are cut);
- a bare date, ``2026-12-06``: its midnight, UTC.

Engines store time as signed 64-bit nanoseconds, so a time outside 1677-09-21 .. 2262-04-11 is
refused rather than overflowing. Errors are :class:`~logfactory.errors.QueryError` without a
column; the query parser adds the column of the bound.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Final

from logfactory.errors import QueryError

__all__ = ["MAX_NS", "MIN_NS", "UNIT_NS", "format_time", "parse_time_bound"]

MIN_NS: Final = -(2**63)
MAX_NS: Final = 2**63 - 1

UNIT_NS: Final[dict[str, int]] = {
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
    "w": 604_800_000_000_000,
}
"""Nanoseconds per unit of a relative time (``-15m``) and of an interval (``5m``)."""

_RELATIVE = re.compile(r"-?(\d{1,12})([smhdw])")
_ABSOLUTE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?([Zz]|[+-]\d{2}:\d{2})?)?"
)
_HINT = "write -15m, -2h, -7d, now or 2026-12-06T10:00:00Z"


def parse_time_bound(text: str, now_ns: int) -> int:
    """``text`` (see the module docstring) -> UTC nanoseconds; ``now_ns`` is "now".

    Raises :class:`QueryError` naming the text and the forms it could take."""
    value = text.strip()
    if value.lower() == "now":
        return now_ns
    relative = _RELATIVE.fullmatch(value)
    if relative:
        ns = now_ns - int(relative.group(1)) * UNIT_NS[relative.group(2)]
    else:
        absolute = _ABSOLUTE.fullmatch(value)
        if absolute is None:
            raise QueryError(f"unknown time {text!r}: {_HINT}")
        ns = _absolute_ns(absolute, text)
    if not MIN_NS <= ns <= MAX_NS:
        raise QueryError(f"the time {text!r} is outside what the store keeps (1678 to 2262)")
    return ns


def _absolute_ns(match: re.Match[str], text: str) -> int:
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    zone = UTC
    if offset and offset not in "Zz":
        sign = -1 if offset[0] == "-" else 1
        try:
            zone = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
        except ValueError:
            raise QueryError(f"unknown time {text!r}: the offset {offset} is too large") from None
    try:
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=zone,
        )
    except ValueError as exc:
        raise QueryError(f"unknown time {text!r}: {exc}; {_HINT}") from None
    seconds = calendar.timegm(moment.utctimetuple())
    nanos = int((fraction or "").ljust(9, "0")[:9])
    return seconds * 1_000_000_000 + nanos


def format_time(ns: int) -> str:
    """UTC nanoseconds -> RFC 3339 with all nine fraction digits (``…T10:00:00.000000000Z``),
    which :func:`parse_time_bound` reads back to the same nanosecond."""
    seconds, rest = divmod(ns, 1_000_000_000)
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{rest:09d}Z"
