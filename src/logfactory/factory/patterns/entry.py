"""A pattern entry as it leaves the process: the compacted topic's value, and a file's line.

Kept apart from the library so that everything that only reads or writes entries (the file
format, topic readers keying records) does not depend on the miner or the library's state.
Ids come from content, ``"p-" + blake2b(workshop NUL template, 10 bytes)``, so that two workers,
or one worker after a restart, that arrive at the same template give it the same id.
"""

from __future__ import annotations

import hashlib

import msgspec

__all__ = [
    "STATUSES",
    "PatternEntry",
    "decode_entry",
    "encode_entry",
    "entry_key",
    "pattern_id",
]

STATUSES = ("new", "normal", "alert")


class PatternEntry(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One template as stored, exported and shared (the compacted topic's value)."""

    id: str
    workshop: str
    template: str
    status: str = "new"
    reason: str | None = None
    severity: str | None = None
    count: int = 0
    first_seen: int = 0
    last_seen: int = 0
    example: str = ""
    lineage: list[str] = []
    superseded_by: str | None = None


def pattern_id(workshop: str, template: str) -> str:
    data = f"{workshop}\0{template}".encode("utf-8", "surrogatepass")
    return "p-" + hashlib.blake2b(data, digest_size=10).hexdigest()


# One encoder and decoder for the process: building them per call would cost more than the work.
encode_entry = msgspec.json.Encoder().encode
decode_entry = msgspec.json.Decoder(PatternEntry).decode


def entry_key(data: bytes) -> str:
    """The pattern id of a serialised entry (the compacted topic's key)."""
    return decode_entry(data).id
