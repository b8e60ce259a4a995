"""What changed between two versions of the pattern library (``logfactory patterns diff``).

A reviewer comparing last week's export with today's wants the decisions, not the traffic:
templates that appeared or went away, templates that generalised (an old id now lives in a new
entry's lineage, so it is a rename, not a removal plus an addition), and reviews (status, reason,
severity). Counts, first/last seen and the example move on every record, so they only count as
differences when asked for (``counts=True``).

:func:`diff_libraries` is pure (entries in, :class:`LibraryDiff` out); :func:`read_library_file`
reads the file format of :mod:`logfactory.factory.patterns.files` strictly, so that a truncated
or foreign file is refused with its line rather than compared as if half the library vanished.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from logfactory.errors import LibraryFileError
from logfactory.factory.patterns.entry import STATUSES, PatternEntry, decode_entry
from logfactory.factory.patterns.files import FORMAT, VERSION

__all__ = ["Change", "LibraryDiff", "LibraryFileError", "diff_libraries", "read_library_file"]


@dataclass(frozen=True, slots=True)
class Change:
    """One template as it was in OLD and as it is in NEW (for a generalisation, ``new`` is the
    entry whose lineage holds ``old.id``)."""

    old: PatternEntry
    new: PatternEntry

    def to_json(self) -> dict[str, Any]:
        return {"old": msgspec.to_builtins(self.old), "new": msgspec.to_builtins(self.new)}


def _order(e: PatternEntry) -> tuple[str, str, str]:
    return (e.workshop, e.template, e.id)


@dataclass(frozen=True, slots=True)
class LibraryDiff:
    """Differences from OLD to NEW, each group sorted by workshop then template.

    ``counts_changed`` is filled only when the diff was asked to include counts; ``counts``
    records whether it was, so a reader can tell "no count changes" from "not compared".
    """

    added: list[PatternEntry] = field(default_factory=list)
    removed: list[PatternEntry] = field(default_factory=list)
    generalised: list[Change] = field(default_factory=list)
    status_changed: list[Change] = field(default_factory=list)
    counts_changed: list[Change] = field(default_factory=list)
    counts: bool = False

    def __bool__(self) -> bool:
        return any(
            (
                self.added,
                self.removed,
                self.generalised,
                self.status_changed,
                self.counts_changed,
            )
        )

    def summary(self) -> str:
        """One line of counts; says when counts were left out, so "no differences" is honest."""
        note = "" if self.counts else " (counts not compared)"
        if not self:
            return "no differences" + note
        parts = [
            f"{len(self.added)} added",
            f"{len(self.removed)} removed",
            f"{len(self.generalised)} generalised",
            f"{len(self.status_changed)} status changed",
        ]
        if self.counts:
            parts.append(f"{len(self.counts_changed)} counts changed")
        return ", ".join(parts) + note

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "differences": bool(self),
            "summary": {
                "added": len(self.added),
                "removed": len(self.removed),
                "generalised": len(self.generalised),
                "status_changed": len(self.status_changed),
            },
            "added": [msgspec.to_builtins(e) for e in self.added],
            "removed": [msgspec.to_builtins(e) for e in self.removed],
            "generalised": [c.to_json() for c in self.generalised],
            "status_changed": [c.to_json() for c in self.status_changed],
        }
        if self.counts:
            out["summary"]["counts_changed"] = len(self.counts_changed)
            out["counts_changed"] = [c.to_json() for c in self.counts_changed]
        return out


def _review(e: PatternEntry) -> tuple[str, str | None, str | None]:
    return (e.status, e.reason, e.severity)


def _traffic(e: PatternEntry) -> tuple[int, int, int]:
    return (e.count, e.first_seen, e.last_seen)


def diff_libraries(
    old: Sequence[PatternEntry], new: Sequence[PatternEntry], *, counts: bool = False
) -> LibraryDiff:
    """Compare two libraries by id.

    An OLD id absent from NEW is *generalised* when it is in the lineage of a NEW entry (the
    general entry then counts as generalised, not added), otherwise *removed*. An id in both
    is *status changed* when status, reason or severity differ, and (with ``counts``) *counts
    changed* when count, first_seen or last_seen differ. The example and lineage entries that
    OLD never had are not differences: they are bookkeeping, not decisions.
    """
    old_by_id = {e.id: e for e in old}
    new_by_id = {e.id: e for e in new}
    generalised: dict[str, Change] = {}
    targets: set[str] = set()
    for entry in new:
        for pid in entry.lineage:
            was = old_by_id.get(pid)
            if was is not None and pid not in new_by_id and pid not in generalised:
                generalised[pid] = Change(was, entry)
                targets.add(entry.id)
    added = [e for e in new if e.id not in old_by_id and e.id not in targets]
    removed = [e for e in old if e.id not in new_by_id and e.id not in generalised]
    status_changed: list[Change] = []
    counts_changed: list[Change] = []
    for was in old:
        now = new_by_id.get(was.id)
        if now is None:
            continue
        if _review(was) != _review(now):
            status_changed.append(Change(was, now))
        if counts and _traffic(was) != _traffic(now):
            counts_changed.append(Change(was, now))
    by_old = sorted(generalised.values(), key=lambda c: (*_order(c.new), *_order(c.old)))
    return LibraryDiff(
        added=sorted(added, key=_order),
        removed=sorted(removed, key=_order),
        generalised=by_old,
        status_changed=sorted(status_changed, key=lambda c: _order(c.new)),
        counts_changed=sorted(counts_changed, key=lambda c: _order(c.new)),
        counts=counts,
    )


def read_library_file(path: str | Path) -> list[PatternEntry]:
    """The entries of a file written by ``patterns export``, in file order.

    Raises :class:`LibraryFileError` (``FILE:LINE: what is wrong``) for a missing or foreign
    header, an unsupported version, a line that is not an entry, an unknown status, an id that
    appears twice, or fewer/more entries than the header announces (a truncated copy).
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise LibraryFileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    lines = data.split(b"\n")
    try:
        header = json.loads(lines[0])
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise LibraryFileError(f"{path}:1: not a {FORMAT} file (missing header line)")
    if header.get("version") != VERSION:
        raise LibraryFileError(f"{path}:1: unsupported version {header.get('version')!r}")
    entries: list[PatternEntry] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            entry = decode_entry(line)
        except msgspec.DecodeError as exc:
            raise LibraryFileError(f"{path}:{lineno}: not a pattern entry: {exc}") from exc
        if entry.status not in STATUSES:
            raise LibraryFileError(
                f"{path}:{lineno}: pattern {entry.id}: unknown status {entry.status!r}"
            )
        if entry.id in seen:
            raise LibraryFileError(
                f"{path}:{lineno}: pattern {entry.id} appears twice "
                f"(first on line {seen[entry.id]})"
            )
        seen[entry.id] = lineno
        entries.append(entry)
    announced = header.get("entries")
    if isinstance(announced, int) and announced != len(entries):
        raise LibraryFileError(
            f"{path}: the header announces {announced} entries but the file has "
            f"{len(entries)}; is it truncated?"
        )
    return entries
