"""An HTTP ingest body, from bytes on the wire to the items it carries.

Decompression is capped: no encoding may produce more than ``limit`` bytes, and the cap holds
*while* decompressing (``max_length`` for gzip and lz4, a bounded streaming read for zstd), so a
small "bomb" never gets to allocate its inflated size. Concatenated gzip members and lz4/zstd
frames are read in full (that is what ``cat a.gz b.gz`` and streaming compressors produce); a body
that stops in the middle of a member or frame is :class:`BadBody`, never a silent partial read.

Formats (:func:`split_body`): the Content-Type decides when it is specific, the body when not:

* ``text/*``: plain lines.
* NDJSON types (``application/x-ndjson``, ``application/jsonl`` ...): one JSON object per line.
* ``application/json`` and ``+json``: an array (``[...]``) of objects or strings, one object
  (possibly pretty-printed), or NDJSON (what many shippers send under this type).
* anything else or none: sniffed - an array if the body is one, an object or NDJSON if it
  starts with a line that is a JSON object, else plain lines.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass, field
from typing import Any, Literal

import lz4.frame  # type: ignore[import-untyped]
import msgspec
import zstandard

from logfactory.bus.http_ship import RECORDS_MEDIA

__all__ = [
    "ENCODINGS",
    "BadBody",
    "BodyTooLarge",
    "Encoding",
    "IngestResult",
    "UnsupportedEncoding",
    "decompress",
    "encoding_of",
    "media_type",
    "split_body",
]

Encoding = Literal["identity", "gzip", "zstd", "lz4"]
ENCODINGS: dict[str, Encoding] = {
    "": "identity",
    "identity": "identity",
    "gzip": "gzip",
    "x-gzip": "gzip",
    "zstd": "zstd",
    "lz4": "lz4",
    "x-lz4": "lz4",
}
_NDJSON_TYPES = frozenset(
    {
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/x-jsonlines",
        "application/jsonlines",
    }
)
_ZSTD_STEP = 1 << 20
_decode_array = msgspec.json.Decoder(list[Any]).decode
_decode_object = msgspec.json.Decoder(dict[str, Any]).decode


class BodyTooLarge(ValueError):
    """The body (after decompression) is larger than the source's ``max_body_bytes``."""


class BadBody(ValueError):
    """The body cannot be read as announced (corrupt or truncated compression, bad JSON array)."""


class UnsupportedEncoding(ValueError):
    """A ``Content-Encoding`` this endpoint does not speak."""


def encoding_of(header: str | None) -> Encoding:
    """The one encoding named by a ``Content-Encoding`` header; UnsupportedEncoding otherwise."""
    name = (header or "").strip().lower()
    enc = ENCODINGS.get(name)
    if enc is None:
        raise UnsupportedEncoding(
            f"unsupported Content-Encoding {name!r}; send identity, gzip, zstd or lz4"
        )
    return enc


def decompress(data: bytes, encoding: Encoding, limit: int) -> bytes:
    """``data`` decoded; BodyTooLarge past ``limit`` bytes, BadBody if it does not decode."""
    if encoding == "identity" or not data:
        if len(data) > limit:
            raise BodyTooLarge
        return data
    if encoding == "gzip":
        return _gunzip(data, limit)
    if encoding == "lz4":
        return _unlz4(data, limit)
    return _unzstd(data, limit)


def _gunzip(data: bytes, limit: int) -> bytes:
    out = bytearray()
    rest = data
    while rest:
        inflater = zlib.decompressobj(wbits=31)
        try:
            # limit + 1 - len(out) >= 1: zlib reads 0 as "no limit"
            out += inflater.decompress(rest, limit + 1 - len(out))
        except zlib.error as exc:
            raise BadBody(f"the gzip body does not decompress: {exc}") from None
        if len(out) > limit:
            raise BodyTooLarge
        if not inflater.eof:
            raise BadBody("the gzip body is truncated")
        rest = inflater.unused_data
        if not rest.strip(b"\0"):  # some writers pad the last member with zeros
            break
    return bytes(out)


def _unlz4(data: bytes, limit: int) -> bytes:
    out = bytearray()
    rest: bytes | None = data
    while rest:
        frame = lz4.frame.LZ4FrameDecompressor()
        try:
            out += frame.decompress(rest, limit + 1 - len(out))
        except RuntimeError as exc:
            raise BadBody(f"the lz4 body does not decompress: {exc}") from None
        if len(out) > limit:
            raise BodyTooLarge
        if not frame.eof:
            raise BadBody("the lz4 body is truncated")
        rest = frame.unused_data
    return bytes(out)


def _unzstd(data: bytes, limit: int) -> bytes:
    """Two passes: a streaming read that only counts (bounded memory) proves the output fits,
    then frame by frame with ``decompressobj``, which can tell a truncated frame (the streaming
    reader cannot) and whose output is now known to be at most ``limit``."""
    dctx = zstandard.ZstdDecompressor()
    size = 0
    try:
        with dctx.stream_reader(io.BytesIO(data), read_across_frames=True) as reader:
            while chunk := reader.read(_ZSTD_STEP):
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge
        out = bytearray()
        rest = data
        while rest:
            frame = dctx.decompressobj()
            out += frame.decompress(rest)
            if not frame.eof:
                raise BadBody("the zstd body is truncated")
            rest = frame.unused_data
    except zstandard.ZstdError as exc:
        raise BadBody(f"the zstd body does not decompress: {exc}") from None
    return bytes(out)


#: per-line errors a response lists at most (all are counted)
MAX_REPORTED_ERRORS = 10


@dataclass(slots=True)
class IngestResult:
    accepted: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    tags: set[str] = field(default_factory=set)  # the source tags of the accepted records

    def reject(self, number: int, reason: str, what: str = "line") -> None:
        self.rejected += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append({what: number, "error": reason})


BodyKind = Literal["text", "ndjson", "items", "records"]


def media_type(content_type: str | None) -> str:
    """``application/x-ndjson; charset=utf-8`` -> ``application/x-ndjson``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def split_body(body: bytes, content_type: str | None) -> tuple[BodyKind, Any]:
    """How to read ``body``: ("text" | "ndjson", body) for line formats, ("items", list) for a
    JSON array or a single object, ("records", body) for an edge collector's own records
    (:mod:`.ingest_shipped`). BadBody when the type promises an array that is not one."""
    media = media_type(content_type)
    if media == RECORDS_MEDIA:
        return "records", body
    if media.startswith("text/"):
        return "text", body
    if media in _NDJSON_TYPES:
        return "ndjson", body
    declared_json = media == "application/json" or media.endswith("+json")
    start = body.lstrip()[:1]
    if start == b"[":
        try:
            return "items", _decode_array(body)
        except msgspec.DecodeError as exc:
            if declared_json:
                raise BadBody(f"not a JSON array: {exc}") from None
            return "text", body
    if start == b"{":
        try:
            return "items", [_decode_object(body)]  # one object, maybe over several lines
        except msgspec.DecodeError:
            pass
        if declared_json:
            return "ndjson", body
        first = body.lstrip().split(b"\n", 1)[0]
        try:
            _decode_object(first)
        except msgspec.DecodeError:
            return "text", body
        return "ndjson", body
    return ("ndjson" if declared_json else "text"), body
