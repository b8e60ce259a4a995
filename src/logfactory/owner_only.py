"""Owner-only files: the data directory and everything in it is 0700 (directories) and 0600
(files), whatever the umask the node was started under.

Why: the data directory holds every log line collected (the bus), the collectors' positions and
spool, the stats, the pattern library with its example messages, TLS keys and the access store's
credentials. Logs carry user names, addresses, commands and sometimes secrets; under the usual
umask (022) all of it would be readable by every account on the machine.

How, and why this way:

- **The umask, once per process** (:func:`restrict_umask`, 0o077). Files are created in many
  places and by several processes: SQLite creates the bus's ``-wal`` and ``-shm`` files out of
  our sight, the stats writer renames temporary files into place, the spool, positions, SNMP
  engine ids, TLS keys and the access store each write their own, and the node starts children
  (its factory, the embedded bus's writer process). A chmod after each write would miss the next
  new file; a umask set at the start of the process reaches every file it or its children (which
  inherit it, across ``exec`` too) ever create. The CLI sets it before any command runs, and
  each role that writes the data directory sets it again where it starts
  (:func:`make_owner_only`), so a role started from Python rather than the CLI is covered too.
  SQLite gives ``-wal`` and ``-shm`` the mode of their database, so they follow it.
- **What already exists is tightened at start** (:func:`make_owner_only`). The umask does not
  change existing files: a directory made by hand (``mkdir`` under umask 022), by an earlier
  version, or restored from a backup may be 0755 with 0644 files in it. Every role that writes
  there walks the directory once when it starts and removes the group and other bits from
  everything in it (a 0755 directory becomes 0700, a 0644 file 0600), saying so in one log line.
  Symbolic links are not followed: where they point is the operator's choice, outside the
  directory. An entry that cannot be changed (another owner, a read-only mount) is named in a
  warning and the start goes on: refusing would stop log collection over a mode.

The SDK and the readers (``subscribe``, ``tail``, ``bus check``) never create files, so they
neither need nor call this.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

__all__ = ["OWNER_ONLY_UMASK", "make_owner_only", "restrict_umask"]

log = logging.getLogger(__name__)

#: Removes every group and other permission bit from what the process creates.
OWNER_ONLY_UMASK = 0o077
_OTHERS = 0o077


def restrict_umask() -> None:
    """Make everything this process (and its children) creates from now on owner-only."""
    os.umask(OWNER_ONLY_UMASK)


def make_owner_only(data_dir: Path) -> list[Path]:
    """Set the owner-only umask, create ``data_dir`` (0700) if missing, and tighten it and
    everything in it that others may read (see the module docstring). Returns what was
    tightened, in walk order (the directory first); says so in one warning when anything was.

    A directory that cannot be created is left to the caller's own first use of it, which
    reports the reason in its terms (e.g. the node's "node.data_dir ...: cannot use it")."""
    restrict_umask()
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return []
    changed: list[Path] = []
    failed: list[str] = []
    top = data_dir.resolve()  # a data directory that is a link: its target is what to protect
    was = _mode(top)
    for path in _tree(top):
        try:
            if _tighten(path):
                changed.append(path)
        except FileNotFoundError:
            continue  # removed meanwhile (a stats file renamed into place): nothing to protect
        except OSError as exc:
            failed.append(f"{path}: {exc.strerror or exc}")
    if changed:
        log.warning("%s", _said(data_dir, top, was, changed))
    if failed:
        log.warning(
            "node.data_dir %s: could not make %d entr%s owner-only, e.g. %s",
            data_dir, len(failed), "y" if len(failed) == 1 else "ies", failed[0],
        )  # fmt: skip
    return changed


def _said(data_dir: Path, top: Path, was: int | None, changed: list[Path]) -> str:
    """The one line that says what was tightened."""
    inside = len(changed) - (changed[0] == top)
    entries = f"{inside} entr{'y' if inside == 1 else 'ies'} in it"
    modes = "(directories 0700, files 0600)"
    if changed[0] != top:
        were = "was" if inside == 1 else "were"
        return (
            f"node.data_dir {data_dir}: {entries} {were} open to other users: made owner-only "
            f"{modes}"
        )
    also = f", and {entries} {modes}" if inside else ""
    return (
        f"node.data_dir {data_dir} was open to other users (mode {was or 0:04o}): made it "
        f"owner-only (0700){also}"
    )


def _tree(top: Path) -> Iterator[Path]:
    """``top`` and everything under it, directories before their contents, links not followed."""
    yield top
    for root, dirs, files in os.walk(top, followlinks=False):
        for name in (*dirs, *files):
            yield Path(root, name)


def _mode(path: Path) -> int | None:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None


def _tighten(path: Path) -> bool:
    """Remove the group and other bits of ``path`` (never of a link's target: links are left
    as they are); True if it had any."""
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode) or not st.st_mode & _OTHERS:
        return False
    path.chmod(stat.S_IMODE(st.st_mode) & ~_OTHERS)
    return True
