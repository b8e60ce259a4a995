"""Durations and sizes: written as text in the file (``60s``, ``512MiB``), numbers at run time.

The loader turns every :class:`Duration` and :class:`Size` field into its number once, so
runtime code reads seconds and bytes and never parses ``"60s"`` again. Both are subclasses of
``float`` / ``int`` (``str()`` and JSON see the number) that remember how the file wrote them
in ``text`` (``60s``), for the messages and templates that show a value the way the user wrote
it (:func:`duration_text`).

This module imports nothing of logfactory.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["Duration", "Size", "dec_hook", "duration_text", "parse_duration", "parse_size"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB|TB|TiB)?\s*$", re.I)
_SIZE_UNITS = {
    "b": 1, "kb": 1000, "kib": 1024, "mb": 10**6, "mib": 2**20,
    "gb": 10**9, "gib": 2**30, "tb": 10**12, "tib": 2**40,
}  # fmt: skip
DURATION_HELP = "write e.g. 250ms, 60s, 5m, 2h or 7d"
SIZE_HELP = "write e.g. 512MiB or 1GB"


def parse_duration(value: str | float) -> float:
    """Seconds from ``30``, ``1.5``, ``250ms``, ``60s``, ``5m``, ``2h`` or ``7d``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    m = _DURATION.match(value) if isinstance(value, str) else None
    if not m:
        raise ValueError(f"{value!r} is not a duration; {DURATION_HELP}")
    return float(m.group(1)) * _DURATION_UNITS[m.group(2)]


def parse_size(value: str | int) -> int:
    """Bytes from ``1048576``, ``512MiB`` or ``1GB``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    m = _SIZE.match(value) if isinstance(value, str) else None
    if not m:
        raise ValueError(f"{value!r} is not a size; {SIZE_HELP}")
    return int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "b").lower()])


class Duration(float):
    """Seconds, from a number or text such as ``250ms``, ``60s``, ``5m``, ``2h``, ``7d``.

    A float everywhere; ``text`` is the value as the file wrote it (a number as ``60s``).
    """

    __slots__ = ("text",)
    text: str

    def __new__(cls, value: str | float) -> Duration:
        self = super().__new__(cls, parse_duration(value))
        self.text = value if isinstance(value, str) else f"{float(value):g}s"
        return self


class Size(int):
    """Bytes, from a whole number or text such as ``512MiB``, ``1GB`` (powers of 1024 for
    KiB/MiB/GiB/TiB, of 1000 for KB/MB/GB/TB).

    An int everywhere; ``text`` is the value as the file wrote it."""

    text: str

    def __new__(cls, value: str | int) -> Size:
        self = super().__new__(cls, parse_size(value))
        self.text = value if isinstance(value, str) else str(int(value))
        return self


def duration_text(value: float) -> str:
    """A duration as the file wrote it (``60s``), or a plain number of seconds as ``60s``."""
    return value.text if isinstance(value, Duration) else f"{value:g}s"


def dec_hook(tp: Any, value: Any) -> Any:
    """msgspec's hook for the unit types: their ValueError becomes an error at the key's line."""
    if tp is Duration:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ValueError(f"expected a duration, got {value!r}; {DURATION_HELP}")
        return Duration(value)
    if tp is Size:
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise ValueError(f"expected a size, got {value!r}; {SIZE_HELP}")
        return Size(value)
    raise NotImplementedError(f"no conversion to {tp!r}")
