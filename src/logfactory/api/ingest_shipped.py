"""Records shipped by an edge collector (``bus.type: http``) to ``POST /api/v1/ingest``.

Why a body kind of its own: an edge collector has already made its records (source tag, host,
receive time, metadata), so they are written to ``logs.raw`` exactly as sent, with the edge's
key, instead of being made again from text here. Each one is checked to be a record first: a
damaged one is rejected by its 1-based number, the others are kept (like NDJSON lines). All are
checked before the first is produced, so nothing of a body that ends in an error is on the bus.
Their lines are not cut to this node's ``max_frame_bytes``: the edge's own sources bounded them.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from logfactory.api.ingest_body import BadBody, IngestResult
from logfactory.bus.http_ship import RECORDS_MEDIA
from logfactory.record import decode_record
from logfactory.topics import RAW

__all__ = ["ingest_shipped"]

_decode_batch = msgspec.msgpack.Decoder(list[tuple[bytes | None, bytes]]).decode
#: what decoding untrusted msgpack may raise besides msgspec's own errors
_ERRORS = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


def ingest_shipped(
    body: bytes, produce: Callable[[str, bytes, bytes | None], None]
) -> IngestResult:
    """Produce every valid record of ``body`` (msgpack ``[[key, value], ...]``) to ``logs.raw``."""
    result = IngestResult()
    try:
        batch = _decode_batch(body)
    except _ERRORS as exc:
        raise BadBody(f"not a batch of shipped records ({RECORDS_MEDIA}): {exc}") from None
    ready: list[tuple[bytes | None, bytes]] = []
    for index, (key, value) in enumerate(batch, start=1):
        try:
            record = decode_record(value)
        except _ERRORS as exc:
            result.reject(index, f"not a logfactory record: {exc}", "record")
            continue
        ready.append((key, value))
        result.accepted += 1
        result.tags.add(record.source)
    result.require_exact()
    for key, value in ready:
        produce(RAW, value, key)
    return result
