"""Reading a data directory's permission bits: what is not owner-only (directories 0700, files
0600; see logfactory.owner_only)."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def modes(top: Path) -> dict[str, int]:
    """``top`` and everything under it (relative path, ``.`` for ``top``) -> permission bits;
    symbolic links are left out (their own bits mean nothing), entries gone meanwhile too."""
    found: dict[str, int] = {}
    for root, dirs, files in os.walk(top):
        for name in (".", *dirs, *files):
            path = Path(root, name)
            try:
                st = path.lstat()
            except FileNotFoundError:
                continue  # e.g. a stats file's temporary copy, renamed into place meanwhile
            if not stat.S_ISLNK(st.st_mode):
                found[os.path.normpath(path.relative_to(top))] = stat.S_IMODE(st.st_mode)
    return found


def not_owner_only(top: Path) -> dict[str, str]:
    """The entries of :func:`modes` that are not owner-only: path -> its mode, in octal."""
    wrong: dict[str, str] = {}
    for rel, mode in modes(top).items():
        want = 0o700 if (top / rel).is_dir() else 0o600
        if mode != want:
            wrong[rel] = f"{mode:04o}"
    return wrong
