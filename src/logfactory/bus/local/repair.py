# Table names here are t<integer id> from the bus's own topics table, never user text.
"""Check and repair of the embedded bus: ``logfactory bus check`` and ``logfactory bus repair``.

Why a repair that decides nothing silently: a bus is someone's history (the collectors' raw
lines, the events made of them, the groups' offsets). So the check only reads (the database is
opened read-only), and the repair does what the state asks and no more:

* damaged (SQLite finds bad pages): every readable message is copied into a new database with
  the same bus id (:mod:`logfactory.bus.local.salvage`), and the damaged file is moved aside as
  ``bus.sqlite3.damaged-<time>``, never deleted;
* lost (the marker says a bus lived here, the database is missing or empty, see
  :mod:`logfactory.bus.local.marker`), or damaged beyond reading its list of topics: only with
  ``accept_loss`` is a new empty bus started, under a new id;
* swapped (the database is another bus's): only with ``adopt`` does the marker take its id.

Each repair is recorded in the marker (``repairs``). The collectors' saved positions (file and
SQL sources, ``<data_dir>/collect``) are left as they are unless ``reset_positions``: they refer
to what the bus had received, and the lines they passed are still in the sources.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from logfactory.bus.base import BusError
from logfactory.bus.local.db import (
    BUS_ID,
    CREATED_MS,
    DB_NAME,
    SCHEMA_VERSION,
    create_schema,
    integrity_problems,
    is_damage,
    new_bus_id,
    now_ms,
)
from logfactory.bus.local.marker import (
    MARKER_NAME,
    POSITION_GLOBS,
    Marker,
    iso,
    read_marker,
    write_marker,
)
from logfactory.bus.local.salvage import NothingToSalvage, SalvageReport, salvage
from logfactory.errors import RepairRefused

__all__ = [
    "PROBLEMS_LISTED",
    "CheckReport",
    "RepairRefused",
    "State",
    "TopicCount",
    "check",
    "repair",
]

State = Literal["healthy", "damaged", "lost", "swapped", "none"]
PROBLEMS_LISTED = 20  # integrity problems a check collects: enough to tell what kind of damage
_T = TypeVar("_T")


@dataclass
class TopicCount:
    """Messages stored in a topic and the sum of its partitions' next offsets (None: unreadable)."""

    name: str
    partitions: int
    stored: int | None = None
    end: int | None = None
    problem: str | None = None


@dataclass
class CheckReport:
    path: Path
    marker: Marker | None
    state: State = "healthy"
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    schema: int | None = None
    bus_id: int | None = None
    created: str | None = None
    topics: list[TopicCount] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return self.state == "healthy"


def _gone(path: Path) -> bool:
    """Missing or 0 bytes with no write-ahead log holding data: nothing SQLite could read."""
    wal = path.with_name(path.name + "-wal")
    size = path.stat().st_size if path.exists() else 0
    return not size and not (wal.exists() and wal.stat().st_size)


def _open_ro(path: Path) -> sqlite3.Connection:
    """Read-only: a check never changes the file it judges, a salvage never its source."""
    try:
        return sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise BusError(f"cannot open {path}: {exc}") from exc


def _damaged(exc: sqlite3.Error) -> str:
    if not is_damage(exc):
        raise BusError(f"cannot read the bus: {exc}") from exc
    return str(exc)


def _counts(conn: sqlite3.Connection, report: CheckReport) -> None:
    specs = conn.execute("SELECT name, id, partitions FROM topics ORDER BY id").fetchall()
    for name, tid, partitions in specs:
        count = TopicCount(str(name), int(partitions))
        report.topics.append(count)
        try:
            names = {str(r[1]) for r in conn.execute(f"PRAGMA table_info(t{int(tid)})")}
            what = "SUM(n)" if "n" in names else "COUNT(*)"
            (stored,) = conn.execute(f"SELECT COALESCE({what}, 0) FROM t{int(tid)}").fetchone()
            (end,) = conn.execute(
                "SELECT COALESCE(SUM(next), 0) FROM heads WHERE topic=?", (name,)
            ).fetchone()
            count.stored, count.end = int(stored), int(end)
        except sqlite3.DatabaseError as exc:
            count.problem = _damaged(exc)


def _identity(conn: sqlite3.Connection, report: CheckReport) -> None:
    rows = dict(
        conn.execute(
            "SELECT name, value FROM meta WHERE name IN (?, ?)", (BUS_ID, CREATED_MS)
        ).fetchall()
    )
    bus_id, created = rows.get(BUS_ID), rows.get(CREATED_MS)
    report.bus_id = bus_id if isinstance(bus_id, int) else None
    report.created = iso(created) if isinstance(created, int) else None


def _inspect(conn: sqlite3.Connection, report: CheckReport) -> bool:
    """Fill ``report`` from the open database; False when it has no tables at all."""
    try:
        tables = conn.execute("SELECT name FROM sqlite_master").fetchall()
    except sqlite3.DatabaseError as exc:
        report.problems.append(_damaged(exc))
        return True
    if not tables:
        return False
    report.problems += integrity_problems(conn, "integrity_check", limit=PROBLEMS_LISTED)
    try:
        (report.schema,) = conn.execute("PRAGMA user_version").fetchone()
        if report.schema in (0, 2):
            report.notes.append(f"schema {report.schema}: upgraded in place at the next start")
        elif report.schema != SCHEMA_VERSION:
            report.problems.append(
                f"bus schema {report.schema}: not one this version knows (it needs "
                f"{SCHEMA_VERSION}); written by a newer version?"
            )
            return True
        _identity(conn, report)
        _counts(conn, report)
    except sqlite3.DatabaseError as exc:
        report.problems.append(_damaged(exc))
    return True


def check(directory: Path) -> CheckReport:
    """What state the bus in ``directory`` is in; reads only."""
    path = directory / DB_NAME
    marker = read_marker(directory)
    report = CheckReport(path, marker)
    if marker is not None and marker.id is None:
        report.notes.append(
            f"{marker.path}: {marker.problem}; the next start rewrites it from the database"
        )
    if _gone(path):
        report.state = "lost" if marker is not None else "none"
        return report
    conn = _open_ro(path)
    try:
        if not _inspect(conn, report):
            report.state = "lost" if marker is not None else "none"
            return report
    finally:
        conn.close()
    if report.problems or any(t.problem for t in report.topics):
        report.state = "damaged"
    elif marker is not None and marker.id is not None and report.bus_id != marker.id:
        report.state = "swapped"
    return report


# -- repair --------------------------------------------------------------------------------
def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def _aside(path: Path, label: str, stamp: str) -> Path:
    """Move ``path`` and its write-ahead log and index aside, paired as SQLite expects."""
    target = path.with_name(f"{path.name}.{label}-{stamp}")
    n = 1
    while any(Path(f"{target}{s}").exists() for s in ("", "-wal", "-shm")):
        n += 1
        target = path.with_name(f"{path.name}.{label}-{stamp}-{n}")
    for suffix in ("-wal", "-shm", ""):
        src = Path(f"{path}{suffix}")
        if src.exists():
            src.rename(Path(f"{target}{suffix}"))
    return target


def _build(path: Path, stamp: str, fill: Callable[[sqlite3.Connection], _T]) -> tuple[Path, _T]:
    """A new database beside ``path``, filled by ``fill`` in one transaction and on disk."""
    tmp = path.with_name(f"{path.name}.new-{stamp}")
    conn = sqlite3.connect(tmp, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=MEMORY")
        conn.execute("BEGIN")
        result = fill(conn)
        conn.execute("COMMIT")
        conn.close()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
    except BaseException:
        conn.close()
        with contextlib.suppress(OSError):
            tmp.unlink()  # our own half-built file, never the bus's
        raise
    return tmp, result


def _record(marker: Marker | None, directory: Path, bus_id: int, created: str, what: str) -> None:
    repairs = (*(marker.repairs if marker else ()), {"time": iso(now_ms()), "what": what})
    write_marker(directory, bus_id, created, repairs, replace=True)


def _reset_positions(data_dir: Path, stamp: str) -> list[str]:
    collect = data_dir / "collect"
    found = sorted(p for g in POSITION_GLOBS for p in collect.glob(g)) if collect.is_dir() else []
    for p in found:
        p.rename(p.with_name(f"{p.name}.before-repair-{stamp}"))
    if not found:
        return ["no saved positions of file or SQL sources to reset"]
    return [
        f"saved positions moved aside (…before-repair-{stamp}), the sources start again as at "
        f"their first start: {', '.join(p.name for p in found)}"
    ]


def _positions_kept(data_dir: Path) -> list[str]:
    collect = data_dir / "collect"
    found = [p for g in POSITION_GLOBS for p in collect.glob(g)] if collect.is_dir() else []
    if not found:
        return []
    return [
        f"saved positions of file and SQL sources in {collect} are kept: lines they passed "
        "and the bus lost are not read again (--reset-positions moves them aside)"
    ]


def _salvage_lines(report: SalvageReport, path: Path, kept: Path) -> list[str]:
    rows = sum(t.rows for t in report.topics)
    lines = [f"salvaged {report.messages:,} messages ({rows:,} rows) into a new {path}"]
    for t in (t for t in report.topics if t.messages or t.recorded_end):  # ones that held any
        extra = [f"offsets reached {t.recorded_end:,}"] if t.recorded_end else []
        if t.damaged_regions:
            extra.append(f"{t.damaged_regions} damaged region(s) skipped")
        if t.invalid:
            extra.append(f"{t.invalid} invalid row(s) left out")
        note = f" ({', '.join(extra)})" if extra else ""
        lines.append(f"  {t.name}: {t.messages:,} messages{note}")
    lines.append(f"  consumer groups' committed offsets: {report.offsets} copied")
    lines += [f"  unreadable: {u}" for u in report.unreadable]
    lines.append(f"the damaged database is kept as {kept}")
    return lines


def _salvage(directory: Path, check_report: CheckReport, stamp: str) -> list[str]:
    path, marker = check_report.path, check_report.marker
    bus_id = (marker.id if marker else None) or check_report.bus_id or new_bus_id()
    created = (marker.created if marker and marker.id else None) or check_report.created
    src = _open_ro(path)
    try:
        tmp, report = _build(path, stamp, lambda dst: salvage(src, dst, bus_id))
    finally:
        src.close()
    kept = _aside(path, "damaged", stamp)
    tmp.rename(path)
    _record(
        marker, directory, bus_id, created or iso(now_ms()),
        f"salvaged {report.messages:,} messages; the damaged database is kept as {kept.name}",
    )  # fmt: skip
    return _salvage_lines(report, path, kept)


def _start_empty(
    directory: Path, check_report: CheckReport, stamp: str, label: str = "lost"
) -> list[str]:
    """A new empty bus under a new id; what was left of the old file is moved aside."""
    path, marker = check_report.path, check_report.marker
    tmp, bus_id = _build(path, stamp, create_schema)
    kept = _aside(path, label, stamp) if path.exists() or Path(f"{path}-wal").exists() else None
    tmp.rename(path)
    old = f"bus id {marker.id}" if marker and marker.id else "the bus"
    _record(marker, directory, bus_id, iso(now_ms()), f"accepted the loss of {old}; new empty bus")
    lines = [f"started a new empty bus (bus id {bus_id}) in {path}; the loss is recorded in "
             f"{directory / MARKER_NAME}"]  # fmt: skip
    if kept is not None:
        lines.append(f"what was left of the old database is kept as {kept}")
    return lines


def _adopt(directory: Path, check_report: CheckReport) -> list[str]:
    path, marker = check_report.path, check_report.marker
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT OR IGNORE INTO meta VALUES (?, ?)",
            [(BUS_ID, new_bus_id()), (CREATED_MS, now_ms())],
        )
        conn.execute("COMMIT")
        rows = dict(conn.execute("SELECT name, value FROM meta WHERE name IN (?, ?)",
                                 (BUS_ID, CREATED_MS)).fetchall())  # fmt: skip
    finally:
        conn.close()
    bus_id, created = int(rows[BUS_ID]), iso(int(rows[CREATED_MS]))
    old = marker.id if marker else None
    marker_path = directory / MARKER_NAME
    _record(marker, directory, bus_id, created, f"adopted the database of bus id {bus_id} "
            f"(the marker had named bus id {old})")  # fmt: skip
    return [f"{path} (bus id {bus_id}) is now this directory's bus; recorded in {marker_path}"]


def repair(
    directory: Path, *, accept_loss: bool = False, adopt: bool = False,
    reset_positions: bool = False,
) -> list[str]:  # fmt: skip
    """Repair the bus in ``directory`` as its state asks (see the module docstring); the lines
    say what was done. Raises :class:`RepairRefused` when that needs a decision. The caller
    makes sure that no node uses the bus meanwhile."""
    report = check(directory)
    stamp = _stamp()
    if report.state == "none":
        return [f"no bus in {directory} yet: a node creates one at its start; nothing to repair"]
    if report.state == "healthy":
        return [f"{report.path} is healthy: nothing to repair"]
    if report.schema is not None and report.schema > SCHEMA_VERSION:
        raise RepairRefused(f"{report.path} has bus schema {report.schema}, written by a newer "
                            "version: repair it with that version")  # fmt: skip
    if report.state == "swapped":
        if not adopt:
            raise RepairRefused(
                f"{report.path} is another bus's database (bus id {report.bus_id}, the marker "
                f"names {report.marker.id if report.marker else None}); put this bus's own file "
                "back, or pass --adopt to make this database this directory's bus"
            )
        return _adopt(directory, report)
    if report.state == "damaged":
        try:
            lines = _salvage(directory, report, stamp)
        except NothingToSalvage as exc:
            if not accept_loss:
                raise RepairRefused(
                    f"{report.path}: nothing can be salvaged ({exc}); restore the file from a "
                    "backup, or pass --accept-loss to move it aside and start a new empty bus"
                ) from None
            lines = _start_empty(directory, report, stamp, "damaged")
    elif not accept_loss:  # lost
        raise RepairRefused(
            f"{report.path} is missing or empty but {report.marker.path if report.marker else ''}"
            " says a bus lived here: restore the database from a backup, or pass --accept-loss "
            "to start a new empty bus"
        )
    else:
        lines = _start_empty(directory, report, stamp)
    data_dir = directory.parent
    lines += _reset_positions(data_dir, stamp) if reset_positions else _positions_kept(data_dir)
    return lines
