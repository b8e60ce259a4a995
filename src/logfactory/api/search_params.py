"""What the search routes share: their parameters turned into a query, hits into JSON, and the
store's refusals into answers.

A person's mistake is a 400 that says what to change: a query the parser refuses keeps its
column (``{"error": ..., "column": 12}``), so a console can point at it; an unknown column in
``fields`` or ``field`` names the columns there are. An engine that cannot answer is a 503 with
``Retry-After``: the store is down or still opening, not the caller's fault.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import msgspec
from fastapi.responses import JSONResponse, Response

from logfactory.errors import QueryError, StoreError, StoreUnavailable
from logfactory.store.document import (
    COLUMNS,
    FIELD_PREFIX,
    KEYWORD_COLUMNS,
    StoredDoc,
    doc_to_json,
)
from logfactory.store.query.parser import parse_query
from logfactory.store.query.tree import Query

__all__ = [
    "RETRY_AFTER_S",
    "Chosen",
    "build_query",
    "field_value",
    "json_answer",
    "parse_fields",
    "project",
    "rfc3339",
    "store_refusal",
    "took_ms",
    "value_field",
]

RETRY_AFTER_S = 5
_NANOS = 1_000_000_000
_encode = msgspec.json.Encoder().encode

Chosen = tuple[str, ...]
"""Column names a caller chose (``host``, ``message``, ``fields.user``), in its order."""


def build_query(q: str, since: str | None, until: str | None, now_ns: int) -> Query:
    """The query ``q`` over the window ``since``..``until`` (relative to ``now_ns``); raises
    :class:`QueryError` with the column of the mistake."""
    return parse_query(q, now_ns=now_ns, since=since, until=until)


def parse_fields(text: str | None) -> Chosen | None:
    """``host,message,fields.user`` -> the chosen columns (None: every column). A name that is
    no column and has no ``fields.`` prefix is a decoded field (``user`` = ``fields.user``),
    as in the query language."""
    if text is None or not text.strip():
        return None
    chosen: list[str] = []
    for part in text.split(","):
        name = part.strip()
        if not name:
            continue
        if name != "fields" and name not in COLUMNS and not name.startswith(FIELD_PREFIX):
            name = FIELD_PREFIX + name
        if name == FIELD_PREFIX:
            raise QueryError("fields: 'fields.' needs a name after it (fields.user)")
        if name not in chosen:
            chosen.append(name)
    return tuple(chosen)


def value_field(name: str) -> str:
    """The column a ``top``/``distinct`` counts values of: a keyword column or a decoded field
    (a bare name is one: ``user`` = ``fields.user``). Free text and times are refused."""
    if name in KEYWORD_COLUMNS or (name.startswith(FIELD_PREFIX) and name != FIELD_PREFIX):
        return name
    if name in COLUMNS:
        raise QueryError(
            f"field: {name!r} has no values to count; use one of "
            f"{', '.join(sorted(KEYWORD_COLUMNS))} or a decoded field (fields.NAME)"
        )
    if not name:
        raise QueryError("field: give the column to count (host, severity, fields.user, ...)")
    return FIELD_PREFIX + name


def field_value(fields: dict[str, Any], path: str) -> Any:
    """A decoded field by its name after ``fields.``: the key itself (``job.id`` as one key),
    else a walk through nested objects (``job`` -> ``id``); ``None`` when absent."""
    if path in fields:
        return fields[path]
    value: Any = fields
    for step in path.split("."):
        if not isinstance(value, dict) or step not in value:
            return None
        value = value[step]
    return value


def project(doc: StoredDoc, chosen: Chosen | None) -> dict[str, Any]:
    """``doc`` as the API shows it (:func:`doc_to_json`), keeping only ``chosen`` columns
    (``id`` always); ``fields.X`` keeps those decoded fields of ``fields``."""
    if chosen is None:
        return doc_to_json(doc)
    out = doc_to_json(doc, chosen)
    wanted = [name[len(FIELD_PREFIX) :] for name in chosen if name.startswith(FIELD_PREFIX)]
    if wanted and "fields" not in chosen:
        kept = {}
        for path in wanted:
            value = field_value(doc.fields, path)
            if value is not None:
                kept[path] = value
        if kept:
            out["fields"] = kept
    return out


def rfc3339(ns: int | None) -> str | None:
    """UTC nanoseconds as RFC 3339 with microseconds (as hits show times), or None."""
    if ns is None:
        return None
    seconds, rest = divmod(ns, _NANOS)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{rest // 1000:06d}Z"


def json_answer(body: dict[str, Any]) -> Response:
    """``body`` encoded by msgspec (hits hold arbitrary decoded fields)."""
    return Response(_encode(body), media_type="application/json")


def store_refusal(exc: StoreError) -> JSONResponse:
    """A :class:`QueryError` as 400 ``{error, column}``; any other store error as 503 with
    ``Retry-After`` (the engine is down, full, or still opening)."""
    if isinstance(exc, QueryError):
        return JSONResponse({"error": str(exc), "column": exc.column}, status_code=400)
    what = str(exc) if isinstance(exc, StoreUnavailable) else f"the store failed: {exc}"
    return JSONResponse(
        {"error": f"{what}; retry later"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def took_ms(started: float) -> float:
    """Milliseconds since ``started`` (``time.perf_counter``), to a tenth."""
    return round((time.perf_counter() - started) * 1000, 1)
