"""The Record: one raw line or datagram as a collector saw it.

A Record is the only thing collectors put on ``logs.raw``. It carries the source tag that picks the
decoding workshop, the host it came from (the partition key, so that one host's lines stay in
order), the receive time, and the text. Bytes that are not valid UTF-8 are decoded with
replacement characters (U+FFFD) and also kept verbatim in ``raw``: the factory decodes the text like
any other (one invalid byte in a logged field must not hide the line from the rules), flags what it
produces from it (``invalid_utf8``) and keeps the original bytes, never guessing an encoding.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import msgspec

__all__ = ["Record", "decode_record", "encode_record", "encode_records", "make_record", "now_ns"]


class Record(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """One collected line. ``received`` is UTC nanoseconds since the epoch.

    ``gc=False``: a collector creates and queues one per line, 100,000s a second, and tracked
    by the cycle collector they made its collections run often over a large heap. A record
    never refers back to itself (its fields are text, numbers and a plain ``meta`` mapping),
    so it cannot be part of a reference cycle."""

    source: str
    host: str
    received: int
    line: str
    meta: dict[str, Any] = {}
    raw: bytes | None = None


def now_ns() -> int:
    """Wall-clock UTC time in nanoseconds: the one clock every receive time uses."""
    return time.time_ns()


def make_record(
    source: str,
    host: str,
    data: bytes | str,
    meta: dict[str, Any] | None = None,
    received: int | None = None,
) -> Record:
    """Build a Record from what arrived on the wire.

    Invalid UTF-8 is not an error here: the text is decoded with replacement characters for people
    to read, and the exact bytes are kept in ``raw`` so that nothing is lost downstream.
    """
    raw: bytes | None = None
    if isinstance(data, bytes):
        try:
            line = data.decode("utf-8")
        except UnicodeDecodeError:
            line = data.decode("utf-8", errors="replace")
            raw = data
    else:
        line = data
    return Record(
        source=source,
        host=host or "-",
        received=received if received is not None else now_ns(),
        line=line,
        meta=meta or {},
        raw=raw,
    )


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Record)


def encode_record(record: Record) -> bytes:
    return _encoder.encode(record)


def encode_records(records: Iterable[Record]) -> list[bytes]:
    """``encode_record`` of each, without a Python call per record (a file chunk's lines)."""
    return list(map(_encoder.encode, records))


def decode_record(data: bytes) -> Record:
    """Decode a Record from the bus; raises ``msgspec.ValidationError``/``DecodeError`` if bad."""
    return _decoder.decode(data)
