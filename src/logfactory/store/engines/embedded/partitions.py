"""The store on disk: one tantivy index per UTC day of arrival, and what each day holds.

Layout::

    PATH/
      layout                   the layout's version (:data:`LAYOUT_VERSION`), written by the
                               first writer; a store of another version is refused
      writer.lock              held (flock) by the one writing process
      2026-03-01/
        index/                 the day's tantivy index (its own files and lock)
        span.json              {"min_time": ns, "max_time": ns, "token": ...}: the day's
                               range of ``time``, and a token new with each making of the day
        zstd.dict              the day's compression dictionary (owner-only; :mod:`.blob`),
                               once the day has enough documents to train it

A document's day is the UTC day of its ``received`` time (when logfactory got it), not of its
``time`` (what the record says): a late or clock-skewed record must not create or reopen an old
or future day, and age retention then means "kept N days after it arrived". Because ``time``
can differ from arrival, each day keeps the range of ``time`` it holds (``span.json``) so a
query's window skips days that cannot match.

``span.json`` is written *before* the index commits, covering what is about to be committed: a
crash between the two leaves a span a little wider than the index, which only costs a skipped
skip, never a missed document.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from logfactory.errors import StoreUnavailable

__all__ = [
    "DAY_NS",
    "LAYOUT_VERSION",
    "Span",
    "check_layout",
    "day_dirs",
    "day_of",
    "day_start",
    "dir_bytes",
    "read_span",
    "write_span",
]

DAY_NS: Final = 86_400 * 1_000_000_000
_DAY_NAME = re.compile(r"\d{4}-\d{2}-\d{2}")
SPAN_FILE: Final = "span.json"
INDEX_DIR: Final = "index"
LAYOUT_FILE: Final = "layout"
LAYOUT_VERSION: Final = 2
"""1: every column stored by tantivy; 2: one compressed blob a document (:mod:`.blob`)."""


@dataclass(frozen=True, slots=True)
class Span:
    """The range of ``time`` (UTC ns, both inclusive) a day's index may hold, and the token
    of the day's folder (new each time the folder is made: a reader holding a dropped day's
    index knows to open the new one)."""

    min_time: int
    max_time: int
    token: str = ""

    def widened(self, low: int, high: int) -> Span:
        return Span(min(self.min_time, low), max(self.max_time, high), self.token)

    def meets(self, start: int | None, end: int | None) -> bool:
        """Could a document in this span fall in ``[start, end)``?"""
        return (start is None or self.max_time >= start) and (end is None or self.min_time < end)


def day_of(ns: int) -> str:
    """The UTC day (``YYYY-MM-DD``) of a time in nanoseconds."""
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%d")


def day_start(day: str) -> int:
    """The first nanosecond of a day named ``YYYY-MM-DD``."""
    moment = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000_000


def day_dirs(root: Path) -> list[str]:
    """The days the store holds, oldest first (an absent store holds none)."""
    try:
        names = [entry.name for entry in os.scandir(root) if entry.is_dir()]
    except FileNotFoundError:
        return []
    return sorted(name for name in names if _DAY_NAME.fullmatch(name))


def read_span(day_dir: Path) -> Span | None:
    """The day's span, or None when it has none yet (nothing committed)."""
    try:
        data = json.loads((day_dir / SPAN_FILE).read_text())
        return Span(int(data["min_time"]), int(data["max_time"]), str(data.get("token", "")))
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def write_span(day_dir: Path, span: Span) -> None:
    """Replace the day's span atomically (a reader sees the old one or the new one)."""
    tmp = day_dir / f".{SPAN_FILE}.tmp"
    data = {"min_time": span.min_time, "max_time": span.max_time, "token": span.token}
    tmp.write_text(json.dumps(data))
    os.replace(tmp, day_dir / SPAN_FILE)


def check_layout(root: Path, *, claim: bool) -> None:
    """Refuse (StoreUnavailable) a store written in another layout. A store without a
    ``layout`` file is new when it holds no day (``claim``: the writer then writes the file),
    or of layout 1 (before the file existed) when it does."""
    path = root / LAYOUT_FILE
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        if day_dirs(root):
            text = "1"
        elif not claim:
            return
        else:
            tmp = root / f".{LAYOUT_FILE}.tmp"
            tmp.write_text(f"{LAYOUT_VERSION}\n")
            os.replace(tmp, path)
            return
    except OSError as exc:
        raise StoreUnavailable(f"cannot read the store's layout at {path}: {exc}") from exc
    if text != str(LAYOUT_VERSION):
        raise StoreUnavailable(
            f"the store at {root} is in layout {text!r}, and this logfactory reads layout "
            f"{LAYOUT_VERSION} only: move it aside (or delete it) and the store starts anew"
        )


def dir_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (0 when it is gone)."""
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(folder, name)).st_size
            except FileNotFoundError:
                continue  # merged away while we walked
    return total
