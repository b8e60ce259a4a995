"""Records shipped by an edge collector (``bus.type: http``) to ``POST /api/v1/ingest``.

Why a body kind of its own: an edge collector has already made its records (source tag, host,
receive time, metadata), so they are written to ``logs.raw`` exactly as sent, with the edge's
key, instead of being made again from text here. Each one is checked to be a record first: a
damaged one is rejected by its 1-based number, the others are kept (like NDJSON lines).
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from logfactory.bus.http_ship import RECORDS_MEDIA
from logfactory.centre.ingest_body import BadBody, IngestResult
from logfactory.record import decode_record
from logfactory.topics import RAW

__all__ = ["ingest_shipped"]

_decode_batch = msgspec.msgpack.Decoder(list[tuple[bytes | None, bytes]]).decode


def ingest_shipped(
    body: bytes, produce: Callable[[str, bytes, bytes | None], None]
) -> IngestResult:
    """Produce every valid record of ``body`` (msgpack ``[[key, value], ...]``) to ``logs.raw``."""
    result = IngestResult()
    try:
        batch = _decode_batch(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BadBody(f"not a batch of shipped records ({RECORDS_MEDIA}): {exc}") from None
    for index, (key, value) in enumerate(batch, start=1):
        try:
            record = decode_record(value)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            result.reject(index, f"not a logfactory record: {exc}", "record")
            continue
        produce(RAW, value, key)
        result.accepted += 1
        result.tags.add(record.source)
    return result
