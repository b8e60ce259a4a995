"""The records of an HTTP ingest body: its lines or array items, each made a record or rejected.

Kept apart from :mod:`.routes.ingest` (the endpoint: auth, limits, answers) because this is where
untrusted JSON meets the bus, and one rule holds here: a body is checked whole before any of it
is produced. Every line or item becomes a ready-to-produce record or a reject by its 1-based
number - bad JSON, invalid UTF-8 inside a string, nesting too deep, no text, a text longer than
the source's ``max_frame_bytes`` - and nothing may raise half-way: what reaches ``logs.raw`` is
exactly what the answer does not list as rejected, so a client's retry never doubles a line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from logfactory.api.ingest_body import JSON_ERRORS, IngestResult, json_problem
from logfactory.record import encode_record, make_record
from logfactory.topics import RAW

__all__ = ["DEFAULT_MAX_LINE_BYTES", "Produce", "ingest_items", "ingest_lines"]

#: the longest line (the same ``max_frame_bytes`` default as syslog and raw TCP)
DEFAULT_MAX_LINE_BYTES = 1_048_576
Produce = Callable[[str, bytes, bytes | None], None]
_decode_object = msgspec.json.Decoder(dict[str, Any]).decode


def _json_record_fields(
    obj: dict[str, Any], source: str, host: str
) -> tuple[str, str, str, dict[str, Any]] | str:
    """(source, host, text, meta) of one JSON object, or the reason it is rejected.

    Keys other than line/message/host/source/meta are kept in ``meta`` rather than dropped.
    """
    text = obj.pop("line", None)
    if text is None:
        text = obj.pop("message", None)
    if not isinstance(text, str):
        return "needs a 'line' or 'message' string"
    obj_host = obj.pop("host", None)
    obj_source = obj.pop("source", None)
    meta = obj.pop("meta", None)
    if obj_host is not None and not isinstance(obj_host, str):
        return "'host' must be a string"
    if obj_source is not None and (not isinstance(obj_source, str) or not obj_source):
        return "'source' must be a non-empty string"
    if meta is not None and not isinstance(meta, dict):
        return "'meta' must be an object"
    meta = dict(meta) if meta else {}
    for key, value in obj.items():
        meta.setdefault(key, value)
    return obj_source or source, obj_host or host, text, meta


#: what building one record from untrusted JSON values may raise (a reject of that line only)
_RECORD_ERRORS = (ValueError, TypeError, OverflowError, RecursionError, msgspec.MsgspecError)
#: a record ready for ``logs.raw``: (value, key)
Ready = tuple[bytes, bytes]


def _too_long(text: str, limit: int) -> str | None:
    """The reject reason when ``text`` is longer than ``limit`` bytes in UTF-8, else None."""
    if len(text) * 4 <= limit:  # no need to encode: 4 bytes a character at most
        return None
    size = len(text.encode("utf-8", "surrogatepass"))
    return f"line of {size} bytes exceeds max_frame_bytes={limit}" if size > limit else None


def _object_record(
    obj: dict[str, Any], source: str, host: str, peer: str | None, max_line: int
) -> tuple[Ready, str] | str:
    """(the record of one JSON object ready to produce, its source tag), or why it is
    rejected. Nothing is produced here: a body is checked whole before any of it goes out."""
    fields = _json_record_fields(obj, source, host)
    if isinstance(fields, str):
        return fields
    rec_source, rec_host, text, meta = fields
    too_long = _too_long(text, max_line)
    if too_long is not None:
        return too_long
    if peer:
        meta.setdefault("peer", peer)
    try:
        record = make_record(rec_source, rec_host, text, meta)
        ready = (encode_record(record), record.host.encode("utf-8", "surrogatepass"))
    except _RECORD_ERRORS as exc:
        return f"cannot be made a record: {exc}"
    return ready, rec_source


def _line_object(line: bytes) -> dict[str, Any] | str:
    """One NDJSON line as an object, or why it is not one (never raises: invalid UTF-8 and
    nesting past the decoder's depth are reasons too)."""
    try:
        return _decode_object(line)
    except JSON_ERRORS as exc:
        return f"not a JSON object: {json_problem(exc, line)}"


def _produce_all(ready: list[Ready], produce: Produce, result: IngestResult) -> None:
    """Produce the checked records of a body, once all of them were checked (none when the
    answer could not name every rejected line: :meth:`IngestResult.require_exact`)."""
    result.require_exact()
    for value, key in ready:
        produce(RAW, value, key)


def ingest_lines(
    body: bytes,
    *,
    ndjson: bool,
    source: str,
    host: str,
    peer: str | None,
    produce: Produce,
    max_line: int = DEFAULT_MAX_LINE_BYTES,
) -> IngestResult:
    """Turn each non-blank line of ``body`` into a Record and produce it to ``logs.raw``.

    Line numbers in errors are 1-based and count blank lines too, so they match the client's
    file. A line longer than ``max_line`` bytes is rejected (as TCP sources do). Every line is
    checked before the first is produced, so whatever the answer, what reached the bus is
    exactly the lines it does not list as rejected. Runs in a worker thread: it may block on
    the producer's backpressure.
    """
    result = IngestResult()
    ready: list[Ready] = []
    base_meta: dict[str, Any] = {"peer": peer} if peer else {}
    host_key = host.encode("utf-8", "surrogatepass")
    for index, raw in enumerate(body.split(b"\n"), start=1):
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if not line.strip():
            continue
        if len(line) > max_line:
            result.reject(index, f"line of {len(line)} bytes exceeds max_frame_bytes={max_line}")
            continue
        if not ndjson:
            ready.append((encode_record(make_record(source, host, line, base_meta)), host_key))
            result.tags.add(source)
        else:
            obj = _line_object(line)
            made = (
                obj if isinstance(obj, str) else _object_record(obj, source, host, peer, max_line)
            )
            if isinstance(made, str):
                result.reject(index, made)
                continue
            ready.append(made[0])
            result.tags.add(made[1])
        result.accepted += 1
    _produce_all(ready, produce, result)
    return result


def ingest_items(
    items: Sequence[Any],
    *,
    source: str,
    host: str,
    peer: str | None,
    produce: Produce,
    max_line: int = DEFAULT_MAX_LINE_BYTES,
) -> IngestResult:
    """A JSON array: each object is a record as in NDJSON, each string a plain line; anything
    else (or a text longer than ``max_line`` bytes) is rejected by its 1-based ``item`` number.
    All items are checked before the first is produced, as in :func:`ingest_lines`."""
    result = IngestResult()
    ready: list[Ready] = []
    base_meta: dict[str, Any] = {"peer": peer} if peer else {}
    host_key = host.encode("utf-8", "surrogatepass")
    for index, item in enumerate(items, start=1):
        made: tuple[Ready, str] | str
        if isinstance(item, str):
            if not item.strip():
                continue
            too_long = _too_long(item, max_line)
            made = too_long or (
                (encode_record(make_record(source, host, item, base_meta)), host_key),
                source,
            )
        elif isinstance(item, dict):
            made = _object_record(item, source, host, peer, max_line)
        else:
            made = "an item must be an object or a string"
        if isinstance(made, str):
            result.reject(index, made, "item")
            continue
        ready.append(made[0])
        result.tags.add(made[1])
        result.accepted += 1
    _produce_all(ready, produce, result)
    return result
