"""A whole result as NDJSON or CSV, streamed: ``GET /api/v1/export``.

Memory stays bounded whatever the result: the engine's :meth:`StoreReader.scan` fetches pages
as they are consumed, this module turns them into chunks of about :data:`CHUNK_BYTES`, and the
response sends each as it is made (starlette runs this synchronous generator in worker threads,
one chunk at a time, so the event loop never waits on the engine and a slow client only holds
one chunk). An export is capped at ``store.export_max`` records and ``store.export_timeout``.

An export cut short says so at its end, in the body, where every client sees it:

* NDJSON: a last line ``{"_truncated": {"reason": ..., "records": N, "limit": CAP}}`` (a stored
  record always has ``id``; this line never does);
* CSV: a last row of one cell, ``# truncated: ...``.

``reason`` is ``capped`` (more matched than ``export_max``), ``timed_out`` (the export ran out of
``store.export_timeout`` or the store stopped answering). A complete export has no such line.
Whether it was cut short is told by comparing what was sent with the count of matches taken
before the stream (the ``X-Export-Matches`` header).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from logfactory.api.search_params import Chosen, field_value, project, rfc3339
from logfactory.errors import StoreError
from logfactory.store.document import FIELD_PREFIX, TIME_COLUMNS, StoredDoc

__all__ = [
    "CHUNK_BYTES",
    "CSV_COLUMNS",
    "MEDIA_TYPES",
    "ExportPlan",
    "Format",
    "csv_columns",
    "export_chunks",
]

CHUNK_BYTES = 64 * 1024
Format = Literal["ndjson", "csv"]
MEDIA_TYPES: dict[str, str] = {"ndjson": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}
CSV_COLUMNS: Chosen = tuple(StoredDoc.__struct_fields__)
"""Every column, in the stored order; ``fields`` is the decoded fields as one JSON text."""

_encode = msgspec.json.Encoder().encode
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ExportPlan:
    """What one export sends: its format, chosen columns (None: all), the cap, and how many
    matched when it began (None: not counted)."""

    format: Format
    chosen: Chosen | None
    cap: int
    matches: int | None


def csv_columns(chosen: Chosen | None) -> Chosen:
    """The CSV header: ``id`` then the chosen columns, or :data:`CSV_COLUMNS`."""
    if chosen is None:
        return CSV_COLUMNS
    return ("id", *(name for name in chosen if name != "id"))


def _cell(doc: StoredDoc, column: str) -> str:
    if column.startswith(FIELD_PREFIX):
        value = field_value(doc.fields, column[len(FIELD_PREFIX) :])
    else:
        value = getattr(doc, column)
        if column in TIME_COLUMNS:
            return rfc3339(value) or ""
        if column == "fields":
            return _encode(value).decode() if value else ""
    if value is None:
        return ""
    return value if isinstance(value, str) else _encode(value).decode()


def _truncation(plan: ExportPlan, sent: int, failed: bool) -> str | None:
    """Why the export ends early, or None when it sent every match."""
    if sent >= plan.cap and (plan.matches is None or plan.matches > plan.cap):
        return "capped"
    if failed or (plan.matches is not None and sent < min(plan.matches, plan.cap)):
        return "timed_out"
    return None


def _trailer(plan: ExportPlan, reason: str, sent: int) -> bytes:
    if plan.format == "ndjson":
        note = {"_truncated": {"reason": reason, "records": sent, "limit": plan.cap}}
        return _encode(note) + b"\n"
    what = (
        f"capped at {plan.cap} records (store.export_max)"
        if reason == "capped"
        else f"stopped after {sent} records (store.export_timeout, or the store stopped)"
    )
    matched = "" if plan.matches is None else f" of {plan.matches} matches"
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(
        [f"# truncated: {what}{matched}; narrow the query or window"]
    )
    return buf.getvalue().encode()


def export_chunks(plan: ExportPlan, docs: Iterator[StoredDoc]) -> Iterator[bytes]:
    """The body of an export of ``docs`` (newest first, already capped by the engine)."""
    buf = io.StringIO()
    writer: Any = None
    columns: Chosen = ()
    if plan.format == "csv":
        columns = csv_columns(plan.chosen)
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
    out = bytearray(buf.getvalue().encode())
    sent, failed = 0, False
    try:
        for doc in docs:
            if sent >= plan.cap:
                break
            if writer is None:
                out += _encode(project(doc, plan.chosen))
                out += b"\n"
            else:
                buf.seek(0)
                buf.truncate()
                writer.writerow([_cell(doc, c) for c in columns])
                out += buf.getvalue().encode()
            sent += 1
            if len(out) >= CHUNK_BYTES:
                yield bytes(out)
                out.clear()
    except StoreError as exc:  # the status is sent: say it in the body instead
        log.warning("export stopped after %d records: %s", sent, exc)
        failed = True
    reason = _truncation(plan, sent, failed)
    if reason is not None:
        out += _trailer(plan, reason, sent)
    if out:
        yield bytes(out)
