"""Time normalisation shared by the workshops: every timestamp becomes UTC nanoseconds.

The parsers return ``None`` instead of raising when a text is not a usable time, so that each
workshop decides what "no usable time" means for its format (most fall back to the receive time).
They are on the hot path: common ISO shapes are parsed by slicing, and the UTC start of each
local hour is cached per zone (dates and offsets are computed once an hour, not once a line).
Zones change their offset on (local) hour boundaries, so one offset per hour is exact; an
ambiguous or skipped hour at a DST change resolves like ``fold=0``.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

__all__ = [
    "MAX_NS",
    "MIN_NS",
    "MONTHS",
    "NUMBERS",
    "local_to_ns",
    "parse_epoch",
    "parse_iso",
    "resolve_yearless",
    "zone",
]

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_NS = 1_000_000_000
_HOUR_NS = 3600 * _NS
_DAY_NS = 86_400 * _NS
# times outside these bounds are typos or garbage, not times: treated as "no usable time", which
# also guarantees every later stage can format them (datetime covers years 1..9999 only)
MIN_NS = (date(1900, 1, 1).toordinal() - _EPOCH_ORDINAL) * _DAY_NS
MAX_NS = (date(2200, 1, 1).toordinal() - _EPOCH_ORDINAL) * _DAY_NS
# a year-less time further than this from the receive time belongs to the neighbouring year
_HALF_YEAR_NS = 183 * _DAY_NS

MONTHS: dict[str, int] = {
    name: i + 1
    for i, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    )
}

_ISO = re.compile(
    r"\s*(\d{4})-(\d\d)-(\d\d)(?:[Tt ]|\s+)(\d\d):(\d\d)(?::(\d\d))?(?:[.,](\d{1,9})\d*)?"
    r"\s*(?:([Zz]|UTC)|([+-])(\d\d)(?::?(\d\d))?)?\s*",
    re.ASCII,
)


@lru_cache(maxsize=64)
def zone(name: str) -> tzinfo:
    """The tzinfo for an IANA name (``UTC`` is the fixed UTC zone). Raises ``KeyError``-like
    ``zoneinfo`` errors for unknown names; config validation has already rejected those."""
    if name in ("UTC", "Etc/UTC", "Z"):
        return UTC
    return ZoneInfo(name)


@lru_cache(maxsize=8192)
def _hour_start(tz: tzinfo, year: int, month: int, day: int, hour: int) -> int | None:
    """UTC ns at which the local hour ``year-month-day hour:00`` starts in ``tz``."""
    if not 0 <= hour <= 23:
        return None
    try:
        days = date(year, month, day).toordinal() - _EPOCH_ORDINAL
        off = datetime(year, month, day, hour, tzinfo=tz).utcoffset() if tz is not UTC else None
    except (ValueError, OverflowError):
        return None
    secs = days * 86_400 + hour * 3600 - (int(off.total_seconds()) if off is not None else 0)
    return secs * _NS


def local_to_ns(
    tz: tzinfo, year: int, month: int, day: int, hour: int, minute: int, second: int, frac_ns: int
) -> int | None:
    """UTC ns of a naive wall-clock time in ``tz``, or ``None`` if it is not a usable time."""
    if not (0 <= hour <= 23 and 0 <= minute <= 59 and 0 <= second <= 60):
        return None
    base = _hour_start(tz, year, month, day, hour)
    if base is None:
        return None
    ns = base + (minute * 60 + second) * _NS + frac_ns
    return ns if MIN_NS <= ns < MAX_NS else None


def _frac(text: str | None) -> int:
    return int(text.ljust(9, "0")) if text else 0


# int() of one- and two-digit fields without int()'s cost (and without its leniency: " 1", "+1")
NUMBERS: dict[str, int] = {f"{i:02d}": i for i in range(100)} | {str(i): i for i in range(10)}
_CACHE_SIZE = 8192
# hour-start caches: (zone, "YYYY-MM-DDTHH") and (zone, received hour, month, day, hour)
_hours: dict[tuple[tzinfo, str], int | None] = {}
_yearless: dict[tuple[tzinfo, int, int, int, int], int | None] = {}
_ISO_FAST = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}):([0-9]{2}):([0-9]{2})(?:[.,]([0-9]{1,9})[0-9]*)?"
    r"(?:([Zz])|([+-])([0-9]{2}):?([0-9]{2}))?"
)


def _parse_iso_fast(text: str, tz: tzinfo) -> int | None:
    """``YYYY-MM-DD[T ]HH:MM:SS[.frac][Z|+HH:MM|+HHMM]``; ``-1`` = another shape, use the regex."""
    m = _ISO_FAST.fullmatch(text)
    if m is None:
        return -1
    hour_text, mi, sec, frac, z, sign, oh, om = m.groups()
    frac_ns = int(frac.ljust(9, "0")) if frac else 0
    offset_ns = 0
    if sign is not None:
        tz = UTC
        offset_ns = (NUMBERS[oh] * 3600 + NUMBERS[om] * 60) * _NS
        if sign == "+":
            offset_ns = -offset_ns
    elif z is not None:
        tz = UTC
    key = (tz, hour_text)
    base = _hours.get(key, -1)
    if base == -1:
        base = _hour_start(tz, int(text[0:4]), int(text[5:7]), int(text[8:10]), int(text[11:13]))
        if len(_hours) >= _CACHE_SIZE:
            _hours.clear()
        _hours[key] = base
    if base is None:
        return None
    minute, second = NUMBERS[mi], NUMBERS[sec]
    if minute > 59 or second > 60:
        return None
    ns = base + (minute * 60 + second) * _NS + frac_ns + offset_ns
    return ns if MIN_NS <= ns < MAX_NS else None


def parse_iso(text: str, tz: tzinfo) -> int | None:
    """ISO 8601 / RFC 3339 (``2026-11-21T22:38:28.123456+01:00``, ``2026-11-21 22:38:28``,
    ``...Z``, comma decimals): UTC ns. A time without an offset is wall-clock time in ``tz``."""
    if len(text) >= 19:
        ns = _parse_iso_fast(text, tz)
        if ns != -1:
            return ns
    m = _ISO.fullmatch(text)
    if m is None:
        return None
    y, mo, d, h, mi, s, frac, z, sign, oh, om = m.groups()
    if sign is None:
        return local_to_ns(
            UTC if z else tz, int(y), int(mo), int(d), int(h), int(mi), int(s or 0), _frac(frac)
        )
    ns = local_to_ns(UTC, int(y), int(mo), int(d), int(h), int(mi), int(s or 0), _frac(frac))
    if ns is None:
        return None
    offset = (int(oh) * 3600 + int(om or 0) * 60) * _NS
    ns = ns - offset if sign == "+" else ns + offset
    return ns if MIN_NS <= ns < MAX_NS else None


def parse_epoch(value: float) -> int | None:
    """Epoch seconds, milliseconds, microseconds or nanoseconds (told apart by magnitude)."""
    if not 0 <= value < 1e20:  # also rejects NaN
        return None
    if value < 1e11:  # seconds until the year 5138
        ns = int(value * _NS)
    elif value < 1e14:
        ns = int(value * 1_000_000)
    elif value < 1e17:
        ns = int(value * 1_000)
    else:
        ns = int(value)
    return ns if MIN_NS <= ns < MAX_NS else None


@lru_cache(maxsize=256)
def _local_year(tz: tzinfo, hour: int) -> int:
    return datetime.fromtimestamp(hour * 3600, tz).year


def _yearless_hour(tz: tzinfo, received_hour: int, month: int, day: int, hour: int) -> int | None:
    try:
        year = _local_year(tz, received_hour)
    except (OverflowError, OSError, ValueError):
        return None
    received_ns = received_hour * _HOUR_NS
    best = _hour_start(tz, year, month, day, hour)
    if best is not None and abs(best - received_ns) <= _HALF_YEAR_NS:
        return best
    for candidate in (year - 1, year + 1):
        other = _hour_start(tz, candidate, month, day, hour)
        if other is None:
            continue
        if best is None or abs(other - received_ns) < abs(best - received_ns):
            best = other
    return best


def resolve_yearless(
    tz: tzinfo,
    received_ns: int,
    month: int,
    day: int,
    hour: int,
    minute: int,
    second: int,
    frac_ns: int = 0,
) -> int | None:
    """A year-less (RFC 3164) time: the year is the one that puts the time closest to the
    receive time, so ``Dec 31 23:59:59`` received on Jan 1 is last year's and ``Jan 1 00:00:01``
    received (by a fast clock) on Dec 31 is next year's. ``Feb 29`` takes the nearest leap year
    among those three candidates; ``None`` when no candidate is a real date. (The comparison
    uses whole hours, so that the result is cached per receive hour.)"""
    if not (0 <= minute <= 59 and 0 <= second <= 60):
        return None
    key = (tz, received_ns // _HOUR_NS, month, day, hour)
    base = _yearless.get(key, -1)
    if base == -1:
        base = _yearless_hour(tz, key[1], month, day, hour)
        if len(_yearless) >= _CACHE_SIZE:
            _yearless.clear()
        _yearless[key] = base
    if base is None:
        return None
    ns = base + (minute * 60 + second) * _NS + frac_ns
    return ns if MIN_NS <= ns < MAX_NS else None
