"""Delimited key/value workshop for middleware logs (the SCE grid middleware and its kin).

A line is ``len(fields)`` columns split by ``separator``; the last column keeps any further
separators. A column named ``params`` holds ``k=v`` pairs (``pair_separator``/``kv_separator``,
double-quoted values with backslash escapes); unquoted values that look like decimal numbers
become int/float (quoted ones stay strings: quoting says "this is text"), and a bare word without
``kv_separator`` becomes ``word: True`` (a flag). Column values are stripped of surrounding
blanks. ``host`` falls back to the record's host when no column is named so.

The time column is strict on purpose: when ``time_field`` is configured and its value does not
parse, the record is dead-lettered (a wrong ``time_format`` must show at once, not silently
stamp every event with the receive time).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from typing import Any

from logfactory.config import WorkshopConfig
from logfactory.factory.model import DecodedParts, DecodeError
from logfactory.factory.workshops.base import record_text
from logfactory.factory.workshops.timeparse import local_to_ns, parse_iso
from logfactory.record import Record

__all__ = ["KvWorkshop", "convert_value", "parse_pairs"]

_UNESCAPE = re.compile(r"\\(.)", re.S)
_CACHE_SIZE = 4096


def _decimal(digits: str) -> bool:
    """``0|[1-9][0-9]{0,17}`` (ASCII digits only: ``str.isdigit`` alone takes "²" and "٣")."""
    return (
        digits.isdigit()
        and digits.isascii()
        and len(digits) <= 18
        and (len(digits) == 1 or digits[0] != "0")
    )


def convert_value(text: str) -> Any:
    """``"8"`` -> 8, ``"0.5"`` -> 0.5; anything else (``"007"``, ``"1e5"``, ``"nan"``) as is.
    Numbers are ``-?(0|[1-9][0-9]{0,17})(\\.[0-9]{1,17})?``, checked with string methods: this
    runs for every value of every pair, and most values are words, which fail at the first test.
    """
    digits = text[1:] if text.startswith("-") else text
    if digits.isdigit():
        return int(text) if _decimal(digits) else text
    if "." in digits:
        whole, _, frac = digits.partition(".")
        if _decimal(whole) and frac.isdigit() and frac.isascii() and len(frac) <= 17:
            return float(text)
    return text


def _pairs_regex(pair_sep: str, kv_sep: str) -> re.Pattern[str]:
    ps, kv = re.escape(pair_sep), re.escape(kv_sep)
    # key, then either a quoted value or an unquoted run up to the next pair separator
    return re.compile(
        rf"(?:{ps})*(?P<k>(?:(?!{ps}|{kv}).)+)"
        rf"(?:{kv}(?:\"(?P<q>(?:[^\"\\]|\\.)*)\"(?={ps}|$)|(?P<v>(?:(?!{ps}).)*)))?",
        re.S,
    )


def parse_pairs(
    text: str, pair_sep: str = " ", kv_sep: str = "=", regex: re.Pattern[str] | None = None
) -> dict[str, Any]:
    """``cpus=8 app="my app" dry`` -> ``{"cpus": 8, "app": "my app", "dry": True}``."""
    out: dict[str, Any] = {}
    if '"' not in text:  # the common case: plain splits, no regex
        for pair in text.split(pair_sep):
            if not pair:
                continue
            key, sep, value = pair.partition(kv_sep)
            out[key] = convert_value(value) if sep else True
        return out
    pattern = regex or _pairs_regex(pair_sep, kv_sep)
    pos, n = 0, len(text)
    while pos < n:
        m = pattern.match(text, pos)
        if m is None or m.end() == pos:
            break
        key, quoted, value = m.group("k", "q", "v")
        if quoted is not None:
            out[key] = _UNESCAPE.sub(r"\1", quoted) if "\\" in quoted else quoted
        elif value is not None:
            out[key] = convert_value(value)
        else:
            out[key] = True
        pos = m.end()
    return out


class KvWorkshop:
    """Fields: every configured column (stripped strings), ``params`` (dict) when a column has
    that name, ``host``. The message is the whole original line."""

    def __init__(self, name: str, ws: WorkshopConfig, tz: tzinfo) -> None:
        if not ws.fields:
            raise ValueError(f"kv workshop {name!r} needs 'fields'")
        self.name = name
        self._tz = tz
        self._sep = ws.separator
        self._names = list(ws.fields)
        self._count = len(ws.fields)
        self._pair_sep = ws.pair_separator
        self._kv_sep = ws.kv_separator
        self._pairs = _pairs_regex(ws.pair_separator, ws.kv_separator)
        self._has_params = "params" in ws.fields
        self._time_field = ws.time_field
        self._time_format = ws.time_format
        # time text -> UTC ns: parsing depends on the text alone (and the fixed zone and
        # format), and the lines of one second share their text
        self._times: dict[str, int | None] = {}

    def decode(self, record: Record) -> DecodedParts:
        line = record_text(record)
        fields = self._columns(line)
        fields.setdefault("host", record.host)
        return DecodedParts(self.name, self._time(fields, record.received), line, fields)

    def decode_message(
        self, message: str, fields: dict[str, Any], default_time_ns: int
    ) -> DecodedParts:
        out = dict(fields)
        out.update(self._columns(message))
        return DecodedParts(self.name, self._time(out, default_time_ns), message, out)

    def _columns(self, line: str) -> dict[str, Any]:
        parts = line.split(self._sep, self._count - 1)
        if len(parts) < self._count:
            raise DecodeError(
                f"expected {self._count} columns separated by {self._sep!r}, found {len(parts)}"
            )
        # strict=False: split() gave exactly len(self._names) parts (checked above)
        fields: dict[str, Any] = dict(zip(self._names, map(str.strip, parts), strict=False))
        if self._has_params:
            fields["params"] = parse_pairs(
                fields["params"], self._pair_sep, self._kv_sep, self._pairs
            )
        return fields

    def _time(self, fields: dict[str, Any], default_ns: int) -> int:
        if self._time_field is None:
            return default_ns
        text = fields.get(self._time_field)
        if not isinstance(text, str) or not text:
            raise DecodeError(f"no time in column {self._time_field!r}")
        ns = self._times.get(text, -1)
        if ns == -1:
            if self._time_format is None:
                ns = parse_iso(text, self._tz)
            else:
                ns = self._strptime(text, self._time_format)
            if len(self._times) >= _CACHE_SIZE:
                self._times = {}
            self._times[text] = ns
        if ns is None:
            expected = self._time_format or "ISO 8601 (YYYY-MM-DD HH:MM:SS[.ffffff])"
            raise DecodeError(f"bad time {text[:40]!r} in column {self._time_field!r}: "
                              f"expected {expected}")  # fmt: skip
        return ns

    def _strptime(self, text: str, fmt: str) -> int | None:
        try:
            dt = datetime.strptime(text, fmt)  # naive means "in the workshop's zone"
            tz = self._tz
            if dt.tzinfo is not None:
                dt, tz = dt.astimezone(UTC), UTC
        except (ValueError, OverflowError):
            return None
        return local_to_ns(
            tz, dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second,
            dt.microsecond * 1000,
        )  # fmt: skip
