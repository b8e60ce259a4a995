"""The file source's positions file: what it holds, and how it is written without tearing.

``{"version": 1, "files": [...], "lineage": [...]}``: one entry per followed file (``path``,
``dev``/``ino``, the fingerprint ``fp`` of its first ``fp_len`` bytes, the emitted ``offset``,
the day it was last ``seen``; ``win_len``/``win`` for the bytes before the offset; ``gz`` and
``done`` for compressed files), the :mod:`.file_lineage` marks and ``bus_marks``, where
``logs.raw`` ended just before the checkpoint (see :mod:`.file_reconcile`). Written to a temp file,
fsynced, renamed over the old one and the directory fsynced: a crash leaves the old or the new
file, never a mix.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from logfactory.collect.sources.file_lineage import FP_LEN, Mark, fingerprint

__all__ = ["FORGET_AFTER_S", "Key", "TailState", "encode", "known_mark", "read", "write_atomic"]

FORGET_AFTER_S = 7 * 86400  # positions of files no glob matched for this long are dropped
Key = tuple[int, int]
#: path, dev, ino, head, emitted offset, window before it, is gz, gz done
TailState = tuple[str, int, int, bytes, int, bytes, bool, bool]


def encode(
    tails: list[TailState],
    known: dict[Key, dict[str, Any]],
    marks: list[Mark],
    day: int,
    bus_marks: dict[int, int] | None = None,
) -> bytes:
    files: list[dict[str, Any]] = []
    for path, dev, ino, head, offset, window, gz, done in tails:
        fp_len = min(len(head), FP_LEN)
        entry = {"path": path, "dev": dev, "ino": ino, "fp_len": fp_len,
                 "fp": fingerprint(head[:fp_len]), "offset": offset, "seen": day}  # fmt: skip
        if gz:
            entry.update(gz=True, done=done)
        elif window:
            set_window(entry, window)
        files.append(entry)
    live = {(f["dev"], f["ino"]) for f in files}
    for key, e in known.items():
        if key not in live and day - int(e.get("seen", day)) < FORGET_AFTER_S:
            files.append(e)
    lineage = [m.to_json() for m in marks if day - (m.seen or day) < FORGET_AFTER_S]
    doc: dict[str, Any] = {"version": 1, "files": files, "lineage": lineage}
    if bus_marks is not None:
        doc["bus_marks"] = {str(p): o for p, o in sorted(bus_marks.items())}
    return json.dumps(doc, indent=1).encode()


def set_window(entry: dict[str, Any], window: bytes) -> None:
    """Record in ``entry`` the bytes before its offset, which a restart checks before resuming."""
    entry.update(win_len=len(window), win=fingerprint(window))


def read(
    path: Path,
) -> tuple[dict[Key, dict[str, Any]], list[dict[str, Any]], dict[int, int] | None] | None:
    """(entries by identity, lineage marks, where ``logs.raw`` ended before that checkpoint);
    None without a file; ValueError, KeyError or TypeError when it is damaged."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    doc = json.loads(raw)
    known = {(int(e["dev"]), int(e["ino"])): dict(e) for e in doc["files"]}
    bus_marks = doc.get("bus_marks")
    marks = {int(p): int(o) for p, o in bus_marks.items()} if bus_marks is not None else None
    return known, list(doc.get("lineage", [])), marks


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def known_mark(e: dict[str, Any]) -> Mark | None:
    """The lineage mark a plain file's entry amounts to (None for old or .gz entries)."""
    if "win" not in e or e.get("gz"):
        return None
    try:
        return Mark(int(e["fp_len"]), str(e["fp"]), int(e["offset"]), int(e["win_len"]),
                    str(e["win"]), int(e.get("seen", 0)))  # fmt: skip
    except (KeyError, TypeError, ValueError):
        return None
