"""The Event envelope: the system's public contract with every subscriber.

``header`` is common to all types, ``body`` depends on ``header.type`` and ``params`` is the
optional third level (the arguments of an operation). Ids are deterministic so that a replay
after a crash produces the same ids and a subscriber can de-duplicate by id alone.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import msgspec

__all__ = [
    "BUILTIN_TYPES",
    "Event",
    "Header",
    "composite_event_id",
    "decode_event",
    "encode_event",
    "format_time",
    "position_event_id",
    "topic_for_type",
]

BUILTIN_TYPES: tuple[str, ...] = (
    "USER_OP",
    "ADMIN_OP",
    "JOB_STATUS",
    "APP_STATUS",
    "CLUSTER_STATUS",
    "ALERT",
    "NEW_PATTERN",
)

SCHEMA_VERSION = 1


class Header(msgspec.Struct, omit_defaults=True):
    """Absent optional fields are left out, but ``severity`` and ``schema`` are always written:
    a subscriber filters on the one and checks the layout by the other, so neither may depend
    on whether it has its usual value. Their defaults ("" and 0) are placeholders that
    ``__post_init__`` replaces (by ``info`` and :data:`SCHEMA_VERSION`) when an event is made
    or read, so an envelope written without them still reads as it was meant."""

    id: str
    time: str
    type: str
    subtype: str | None = None
    severity: str = ""
    source: str | None = None
    host: str | None = None
    received: str | None = None
    pattern: str | None = None
    reason: str | None = None
    schema: int = 0

    def __post_init__(self) -> None:
        if not self.severity:
            self.severity = "info"
        if not self.schema:
            self.schema = SCHEMA_VERSION


class Event(msgspec.Struct, omit_defaults=True):
    header: Header
    body: dict[str, Any] = {}
    params: dict[str, Any] | None = None


_second_prefix: dict[int, str] = {}


def format_time(ns: int) -> str:
    """RFC 3339 UTC with microseconds and a ``Z``: the one time format in envelopes.

    On the hot path (two or three calls per record), so the date part is cached per second.
    """
    seconds, rem = divmod(ns, 1_000_000_000)
    prefix = _second_prefix.get(seconds)
    if prefix is None:
        if len(_second_prefix) > 4096:
            _second_prefix.clear()
        prefix = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second_prefix[seconds] = prefix
    return f"{prefix}.{rem // 1000:06d}Z"


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=10).hexdigest()


def position_event_id(topic: str, partition: int, offset: int, index: int = 0) -> str:
    """Id of the ``index``-th event made from the record at an input position."""
    return "e-" + _digest(f"{topic}/{partition}/{offset}/{index}")


def composite_event_id(rule: str, key: str, window_start_ns: int) -> str:
    """Id of a composite event: the same rule firing on the same key and window is one event."""
    return "e-" + _digest(f"rule/{rule}/{key}/{window_start_ns}")


def topic_for_type(event_type: str) -> str:
    return f"events.{event_type}"


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Event)


def encode_event(event: Event) -> bytes:
    return _encoder.encode(event)


def decode_event(data: bytes) -> Event:
    return _decoder.decode(data)
