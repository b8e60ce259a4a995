"""Resume cursors: where a reader of several topics stands, as one opaque URL-safe string.

A cursor holds the *next* offset to read of every partition of every topic a reader follows,
so a reader that hands back the cursor of the last event it processed resumes exactly after
it: nothing lost, nothing repeated. It is what the SSE endpoint sends as ``id:`` and gets back
as ``Last-Event-ID``.

Format: a version character, then unpadded base64url of MessagePack ``[[topic, [offset per
partition]], ...]``. Offsets are indexed by partition; ``-1`` means "no position known" (the
reader starts that partition from its default). Any text that is not a cursor raises
:class:`CursorError`, never anything else.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence

import msgspec

from logfactory.errors import CursorError

__all__ = ["MAX_CURSOR_CHARS", "CursorError", "Positions", "decode_cursor", "encode_cursor"]

Positions = dict[str, list[int]]
"""Topic -> next offset per partition (list index = partition, -1 = unknown)."""

MAX_CURSOR_CHARS = 16_384
_VERSION = "1"
_ALPHABET = re.compile(r"^[A-Za-z0-9_-]*$")
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[tuple[str, list[int]]])


def encode_cursor(positions: Mapping[str, Sequence[int]]) -> str:
    """The cursor for ``positions``; topics are sorted so equal positions give equal cursors."""
    payload = _encoder.encode([(topic, list(positions[topic])) for topic in sorted(positions)])
    return _VERSION + base64.urlsafe_b64encode(payload).rstrip(b"=").decode("ascii")


def decode_cursor(text: str) -> Positions:
    """Positions from a cursor, or :class:`CursorError` saying why it is not one."""
    if not text or len(text) > MAX_CURSOR_CHARS:
        raise CursorError("empty or oversized cursor")
    if text[0] != _VERSION:
        raise CursorError(f"unknown cursor version {text[0]!r}")
    body = text[1:]
    if not _ALPHABET.match(body):
        raise CursorError("cursor is not base64url text")
    try:
        payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError) as exc:
        raise CursorError("cursor is not base64url text") from exc
    try:
        items = _decoder.decode(payload)
    except msgspec.DecodeError as exc:  # ValidationError is a subclass
        raise CursorError(f"cursor content is malformed: {exc}") from exc
    out: Positions = {}
    for topic, offsets in items:
        if not topic or any(o < -1 for o in offsets):
            raise CursorError("cursor holds an empty topic or a negative offset")
        out[topic] = offsets
    return out
