"""The readable pattern file: a header line, then one serialised entry per line.

Meant for people and version control (sorted, one entry a line, so it diffs well) and for moving
reviews between deployments. The header names the format and its version so that a wrong or
future file is refused on line 1 rather than half-applied.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from logfactory.factory.patterns.entry import PatternEntry, encode_entry

__all__ = ["FORMAT", "VERSION", "export_jsonl", "import_jsonl"]

FORMAT = "logfactory-patterns"
VERSION = 1


def export_jsonl(entries: Sequence[PatternEntry], path: str | Path) -> int:
    """Write the header then ``entries`` in the order given (callers pass them sorted); returns
    how many were written."""
    header = {"format": FORMAT, "version": VERSION, "entries": len(entries)}
    with open(path, "w", encoding="utf-8") as out:
        out.write(json.dumps(header) + "\n")
        for e in entries:
            out.write(encode_entry(e).decode("utf-8") + "\n")
    return len(entries)


def import_jsonl(path: str | Path, apply: Callable[[bytes], None]) -> int:
    """Hand every entry line of an exported file to ``apply``; returns how many. Raises
    ValueError naming the line for anything that is not such a file, including a ValueError
    from ``apply`` (entries before the bad line have already been applied)."""
    count = 0
    with open(path, encoding="utf-8") as src:
        first = src.readline()
        try:
            header = json.loads(first)
        except ValueError:
            header = None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ValueError(f"{path}:1: not a {FORMAT} file (missing header line)")
        if header.get("version") != VERSION:
            raise ValueError(f"{path}:1: unsupported version {header.get('version')!r}")
        for lineno, line in enumerate(src, start=2):
            if not line.strip():
                continue
            try:
                apply(line.encode("utf-8"))
            except ValueError as exc:
                raise ValueError(f"{path}:{lineno}: {exc}") from exc
            count += 1
    return count
