"""Recognising content we already read when it shows up under a new identity.

Two rotations make a *new* file (new inode) whose beginning we have already read: the copy that
``copytruncate`` makes before truncating the original, and the ``.gz`` that logrotate's
``compress`` makes of a rotated file. Reading either from its start would duplicate lines;
ignoring it would lose the lines we had not reached yet.

A :class:`Mark` remembers, for a file we stopped following (it was deleted, or truncated under
us), the fingerprint of its first bytes, how far we emitted (``offset``) and the fingerprint of
the ``WINDOW`` bytes just before that offset. A new file continues a mark only if both
fingerprints match at the same place, so two logs that merely start alike are never confused:
the new file is then read from ``offset`` on. Marks are persisted with the positions and
forgotten after a week.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FP_LEN",
    "MAX_MARKS",
    "WINDOW",
    "Lineage",
    "Mark",
    "fingerprint",
    "make_mark",
    "window_before",
]

FP_LEN = 256
WINDOW = 256
MAX_MARKS = 1000


def fingerprint(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def window_before(fd: int, offset: int) -> bytes:
    """The (up to) ``WINDOW`` bytes of a file just before ``offset``."""
    n = min(WINDOW, offset)
    return os.pread(fd, n, offset - n)


@dataclass(frozen=True, slots=True)
class Mark:
    fp_len: int
    fp: str
    offset: int
    win_len: int
    win: str
    seen: int = 0  # epoch seconds at the start of the day it was last seen

    def matches_head(self, head: bytes) -> bool:
        return len(head) >= self.fp_len and fingerprint(head[: self.fp_len]) == self.fp

    def matches_window(self, window: bytes) -> bool:
        """``window``: the ``win_len`` bytes before ``offset`` in the candidate file."""
        return len(window) == self.win_len and fingerprint(window) == self.win

    def to_json(self) -> dict[str, Any]:
        return {
            "fp_len": self.fp_len,
            "fp": self.fp,
            "offset": self.offset,
            "win_len": self.win_len,
            "win": self.win,
            "seen": self.seen,
        }

    @classmethod
    def from_json(cls, e: dict[str, Any]) -> Mark:
        return cls(
            int(e["fp_len"]),
            str(e["fp"]),
            int(e["offset"]),
            int(e["win_len"]),
            str(e["win"]),
            int(e.get("seen", 0)),
        )


def make_mark(head: bytes, offset: int, window: bytes, day: int) -> Mark | None:
    """A mark for content read up to ``offset`` (None when there is nothing to recognise)."""
    if offset <= 0 or not head:
        return None
    head = head[:FP_LEN]
    return Mark(len(head), fingerprint(head), offset, len(window), fingerprint(window), day)


class Lineage:
    """The marks of files we stopped following, newest last, at most :data:`MAX_MARKS`."""

    def __init__(self) -> None:
        self._marks: dict[tuple[int, str, int], Mark] = {}

    def add(self, mark: Mark | None) -> None:
        if mark is None:
            return
        key = (mark.fp_len, mark.fp, mark.offset)
        marks = {k: m for k, m in self._marks.items() if k != key}
        marks[key] = mark
        if len(marks) > MAX_MARKS:
            marks = dict(list(marks.items())[-MAX_MARKS:])
        self._marks = marks  # swapped whole: checkpoints read it from another thread

    def candidates(self, head: bytes, extra: Iterable[Mark] = ()) -> list[Mark]:
        """Marks whose head matches ``head``, furthest offset first."""
        found = [m for m in (*self._marks.values(), *extra) if m.matches_head(head)]
        return sorted(found, key=lambda m: -m.offset)

    def marks(self) -> list[Mark]:
        return list(self._marks.values())

    def load(self, entries: Iterable[dict[str, Any]]) -> None:
        for e in entries:
            self.add(Mark.from_json(e))
