"""The embedded bus's marker, ``<bus directory>/bus.json``: proof that a bus lived here.

Why a file beside the database: SQLite opens a missing or 0-byte file as a new, empty database,
so without it a bus whose file was truncated or deleted would start again empty without a word
(its history gone, the file sources' positions pointing past lines nobody has). The marker is
written once the database's tables exist, so its presence means "this directory had a bus":
a database that is then missing or has no tables is lost, and the bus refuses to open it
(:class:`LostBusError`) until someone restores the file or accepts the loss
(``logfactory bus repair --accept-loss``).

The marker names the bus by a random id that the database also keeps (``meta.bus_id``), so a
database file replaced by another bus's, or by an older incarnation of this one, is refused too
(:class:`SwappedBusError`) instead of being mistaken for this directory's history. A bus made
before the marker existed gets one at its next start (written by a writer, never a reader).

Format (JSON, written atomically, kept small)::

    {"bus": "logfactory local bus", "id": 1234, "created": "2026-12-03T09:41:00Z",
     "schema": 3, "repairs": [{"time": "...", "what": "salvaged 9,876 messages ..."}]}
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from logfactory.bus.base import BusError
from logfactory.bus.local.db import (
    BUS_ID,
    CREATED_MS,
    SCHEMA_VERSION,
    Db,
    new_bus_id,
    now_ms,
)
from logfactory.errors import LostBusError, SwappedBusError

__all__ = [
    "MARKER_NAME",
    "POSITION_GLOBS",
    "LostBusError",
    "Marker",
    "SwappedBusError",
    "bind_marker",
    "iso",
    "lost_error",
    "read_marker",
    "refuse_if_gone",
    "write_marker",
]

MARKER_NAME = "bus.json"
_KIND = "logfactory local bus"

#: Collectors' saved positions under ``<data_dir>/collect``: where file and SQL sources resume.
#: They refer to what the bus received, so a lost bus leaves them pointing past lines it lost.
POSITION_GLOBS = ("*.positions.json", "*.sql.json")


@dataclass(frozen=True)
class Marker:
    """What ``bus.json`` says; ``id`` is None when the file is there but cannot be read
    (``problem`` says why): it still proves that a bus lived here."""

    path: Path
    id: int | None
    created: str = "?"
    repairs: tuple[dict[str, str], ...] = field(default=())
    problem: str | None = None


def iso(ms: int) -> str:
    """A time in ms since the epoch as ISO 8601 UTC to the second."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_marker(directory: Path) -> Marker | None:
    """The marker of the bus in ``directory``, or None when there is none."""
    path = directory / MARKER_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BusError(f"cannot read the bus marker {path}: {exc.strerror or exc}") from exc
    try:
        doc = json.loads(raw)
        bus_id = doc["id"]
        if not isinstance(bus_id, int) or isinstance(bus_id, bool):
            raise TypeError("id is not an integer")
        repairs = tuple(r for r in doc.get("repairs", []) if isinstance(r, dict))
        return Marker(path, bus_id, str(doc.get("created", "?")), repairs)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return Marker(path, None, problem=f"unreadable ({type(exc).__name__}: {exc})")


def write_marker(
    directory: Path,
    bus_id: int,
    created: str,
    repairs: tuple[dict[str, str], ...] = (),
    *,
    replace: bool = False,
) -> Marker:
    """Write the marker atomically (temp file, fsync, rename). Without ``replace`` an existing
    marker wins: processes that open a new bus at once all try, the first one writes it."""
    path = directory / MARKER_NAME
    doc = {
        "bus": _KIND,
        "id": bus_id,
        "created": created,
        "schema": SCHEMA_VERSION,
        "repairs": list(repairs),
    }
    tmp = directory / f".{MARKER_NAME}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        if replace:
            tmp.replace(path)
        else:
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise BusError(f"cannot write the bus marker {path}: {exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return Marker(path, bus_id, created, repairs)


def _positions_note(directory: Path) -> str:
    """What the loss means for the collectors' saved positions, when there are any."""
    collect = directory.parent / "collect"
    found = [p for g in POSITION_GLOBS for p in collect.glob(g)] if collect.is_dir() else []
    if not found:
        return ""
    return (
        f". The saved positions of file and SQL sources ({collect}/*.positions.json, "
        "*.sql.json) point past the lost messages: the repair keeps them (those lines stay in "
        "the source files and are not read again) unless you add --reset-positions, which "
        "moves them aside so the sources start again as at their first start"
    )


def lost_error(path: Path, marker: Marker) -> LostBusError:
    """The refusal of a bus whose database is gone: what was there, and the two ways on."""
    known = "an unreadable marker"
    if marker.id is not None:
        known = f"bus id {marker.id}, created {marker.created}"
    return LostBusError(
        f"{path} is missing or empty, but {marker.path} says this directory held a bus "
        f"({known}): its messages are lost unless you put the database back from a backup "
        "(stop every node first). To start again with an empty bus, run "
        f"`logfactory bus repair --accept-loss -c CONFIG`{_positions_note(path.parent)}"
    )


def refuse_if_gone(path: Path, marker: Marker | None) -> None:
    """Before SQLite opens (and so creates) the file: a marked bus without its database.

    A 0-byte file whose write-ahead log holds data is left to SQLite: the log may hold the
    whole database, and the checks after opening judge what it holds."""
    if marker is None:
        return
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        size = 0
    if size:
        return
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size:
        return
    raise lost_error(path, marker)


def _identity(db: Db) -> tuple[int | None, int | None]:
    rows = dict(db.query("SELECT name, value FROM meta WHERE name IN (?, ?)", (BUS_ID, CREATED_MS)))
    bus_id, created = rows.get(BUS_ID), rows.get(CREATED_MS)
    return (
        bus_id if isinstance(bus_id, int) else None,
        created if isinstance(created, int) else None,
    )


def bind_marker(db: Db, directory: Path, marker: Marker | None, *, write: bool) -> None:
    """Check that the database is the one the marker names, or (``write``) give a bus that has
    none (made before markers, or a crash between its tables and its marker) its marker.

    Raises :class:`SwappedBusError` when the ids differ; an unreadable marker is rewritten
    from the database by a writer (the database is the truth; the marker only proves that a
    bus lived here, and the database is here)."""
    bus_id, created = _identity(db)
    if marker is not None and marker.id is not None:
        if bus_id != marker.id:
            has = f"bus id {bus_id}" if bus_id is not None else "no bus id"
            raise SwappedBusError(
                f"{db.path} is not the database that {marker.path} names (the database has "
                f"{has}, the marker says {marker.id}, created {marker.created}): the file was "
                "replaced, e.g. by another bus's. Put this bus's own file back, or, if this is "
                "the database you want here (e.g. a backup), run "
                "`logfactory bus repair --adopt -c CONFIG`"
            )
        return
    if not write:
        return
    if bus_id is None or created is None:
        with db.write() as c:
            c.executemany(
                "INSERT OR IGNORE INTO meta VALUES (?, ?)",
                [(BUS_ID, new_bus_id()), (CREATED_MS, now_ms())],
            )
        bus_id, created = _identity(db)
    if bus_id is None or created is None:  # pragma: no cover - written just above
        raise BusError(f"{db.path}: cannot record the bus id in its meta table")
    write_marker(
        directory,
        bus_id,
        iso(created),
        marker.repairs if marker is not None else (),
        replace=marker is not None,
    )
