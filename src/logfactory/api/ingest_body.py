"""An HTTP ingest body, from bytes on the wire to the items it carries.

Decompression is capped: no encoding may produce more than ``limit`` bytes, and the cap holds
*while* decompressing (``max_length`` for gzip and lz4, a bounded streaming read for zstd), so a
small "bomb" never gets to allocate its inflated size. Concatenated gzip members and lz4/zstd
frames are read in full (that is what ``cat a.gz b.gz`` and streaming compressors produce); a body
that stops in the middle of a member or frame is :class:`BadBody`, never a silent partial read.
The work is bounded too: linear in the body (a body of many tiny empty members once cost time
quadratic in its size: 16 MiB, minutes of CPU), at most :data:`MAX_MEMBERS` members, and at most
:data:`CPU_BUDGET_S` seconds of CPU; past either the body is :class:`BadBody` (a 400).

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
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import lz4.frame  # type: ignore[import-untyped]
import msgspec
import zstandard

from logfactory.bus.http_ship import RECORDS_MEDIA
from logfactory.errors import BadBody, BodyTooLarge, UnsupportedEncoding

__all__ = [
    "CPU_BUDGET_S",
    "ENCODINGS",
    "MAX_MEMBERS",
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
#: compressed members (gzip) or frames (zstd, lz4) a body may hold: streaming compressors write
#: one per flush, ``cat`` one per file; many thousands only come from a body made to cost time
MAX_MEMBERS = 10_000
#: seconds of CPU one body may take to decompress (a 16 MiB body takes well under 0.2 s)
CPU_BUDGET_S = 2.0
_CPU_CHECK_EVERY = 64  # decoder calls between two looks at the clock
_FIRST_STEP = 64  # bytes of input a member is first fed (then doubled up to _MAX_STEP)
_MAX_STEP = 1 << 20
_decode_array = msgspec.json.Decoder(list[Any]).decode
_decode_object = msgspec.json.Decoder(dict[str, Any]).decode


def encoding_of(header: str | None) -> Encoding:
    """The one encoding named by a ``Content-Encoding`` header; UnsupportedEncoding otherwise."""
    name = (header or "").strip().lower()
    enc = ENCODINGS.get(name)
    if enc is None:
        raise UnsupportedEncoding(
            f"unsupported Content-Encoding {name!r}; send identity, gzip, zstd or lz4"
        )
    return enc


def decompress(
    data: bytes,
    encoding: Encoding,
    limit: int,
    *,
    max_members: int = MAX_MEMBERS,
    cpu_budget: float = CPU_BUDGET_S,
) -> bytes:
    """``data`` decoded; BodyTooLarge past ``limit`` bytes, BadBody if it does not decode, has
    more than ``max_members`` members or frames, or takes more than ``cpu_budget`` seconds of
    this thread's CPU."""
    if encoding == "identity" or not data:
        if len(data) > limit:
            raise BodyTooLarge
        return data
    guard = _Guard(encoding, max_members, cpu_budget)
    view = memoryview(data)
    if encoding == "gzip":
        return _members(view, limit, guard, _gzip_member)
    if encoding == "lz4":
        return _members(view, limit, guard, _lz4_frame)
    dctx = zstandard.ZstdDecompressor()  # one per body: not safe to share between threads
    _zstd_fits(dctx, data, limit)
    return _members(view, limit, guard, lambda: _zstd_frame(dctx))


class _Guard:
    """The work one body may cost: ``max_members`` members, ``cpu_budget`` seconds of the
    calling thread's CPU (a worker thread per request, so other requests do not count)."""

    __slots__ = ("budget", "encoding", "max_members", "members", "start", "steps")

    def __init__(self, encoding: str, max_members: int, budget: float) -> None:
        self.encoding, self.max_members, self.budget = encoding, max_members, budget
        self.members = self.steps = 0
        self.start = time.thread_time()

    def member(self) -> None:
        self.members += 1
        if self.members > self.max_members:
            raise BadBody(
                f"the {self.encoding} body has more than {self.max_members} members "
                "(compressed streams back to back); compress a batch as one stream"
            )
        self.step()

    def step(self) -> None:
        self.steps += 1
        if self.steps % _CPU_CHECK_EVERY == 0 and time.thread_time() - self.start >= self.budget:
            raise BadBody(
                f"the {self.encoding} body took more than {self.budget:g} s of CPU to "
                f"decompress ({self.members} members read); send smaller batches"
            )


#: ``(input, room) -> (output, bytes of input used, member ended)``: one member's decoder fed
#: ``input`` with at most ``room`` bytes of output wanted (more means the body is too large)
_Feed = Callable[[memoryview, int], tuple[bytes, int, bool]]


def _members(view: memoryview, limit: int, guard: _Guard, member: Callable[[], _Feed]) -> bytes:
    """Every member of ``view``, decoded by a fresh ``member()`` each.

    Linear in the body: a member is fed slices of the one buffer (never the rest of the body
    re-sliced as bytes), starting with :data:`_FIRST_STEP` bytes and doubling, so whatever a
    decoder copies of unused input (``unused_data``) is at most ``_FIRST_STEP`` bytes or about
    twice the member itself, never the rest of the body.
    """
    out = bytearray()
    pos, end = 0, len(view)
    name = guard.encoding
    while pos < end:
        if name == "gzip" and view[pos] == 0 and not view[pos:].tobytes().strip(b"\0"):
            break  # some writers pad the last member with zeros (copied once: then we stop)
        guard.member()
        feed = member()
        step = _FIRST_STEP
        while True:
            chunk = view[pos : pos + step]
            try:
                piece, used, ended = feed(chunk, limit + 1 - len(out))
            except (zlib.error, RuntimeError, zstandard.ZstdError) as exc:
                raise BadBody(f"the {name} body does not decompress: {exc}") from None
            out += piece
            pos += used
            if len(out) > limit:
                raise BodyTooLarge
            if ended:
                break
            if pos >= end:
                raise BadBody(f"the {name} body is truncated")
            if not used and not piece:  # a decoder that neither reads nor writes: no loop
                raise BadBody(f"the {name} body does not decompress")
            step = min(step * 2, _MAX_STEP)
            guard.step()
    return bytes(out)


def _gzip_member() -> _Feed:
    inflater = zlib.decompressobj(wbits=31)

    def feed(chunk: memoryview, room: int) -> tuple[bytes, int, bool]:
        piece = inflater.decompress(chunk, room)  # room >= 1: zlib reads 0 as "no limit"
        left = len(inflater.unused_data) + len(inflater.unconsumed_tail)
        return piece, len(chunk) - left, inflater.eof

    return feed


def _lz4_frame() -> _Feed:
    context = lz4.frame.create_decompression_context()

    def feed(chunk: memoryview, room: int) -> tuple[bytes, int, bool]:
        piece, used, ended = lz4.frame.decompress_chunk(context, chunk, max_length=room)
        return piece, used, ended

    return feed


def _zstd_frame(dctx: zstandard.ZstdDecompressor) -> _Feed:
    """Frame by frame with ``decompressobj``, which can tell a truncated frame (the streaming
    reader of :func:`_zstd_fits` cannot) but has no output cap: :func:`_zstd_fits` first."""
    frame = dctx.decompressobj()

    def feed(chunk: memoryview, room: int) -> tuple[bytes, int, bool]:
        piece = frame.decompress(chunk)
        return piece, len(chunk) - len(frame.unused_data) if frame.eof else len(chunk), frame.eof

    return feed


def _zstd_fits(dctx: zstandard.ZstdDecompressor, data: bytes, limit: int) -> None:
    """BodyTooLarge unless every frame of ``data`` inflates to ``limit`` bytes at most: a
    streaming read across frames that only counts (bounded memory, linear, all in C)."""
    size = 0
    try:
        with dctx.stream_reader(io.BytesIO(data), read_across_frames=True) as reader:
            while chunk := reader.read(_ZSTD_STEP):
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge
    except zstandard.ZstdError as exc:
        raise BadBody(f"the zstd body does not decompress: {exc}") from None


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

    def require_exact(self) -> None:
        """Raise :class:`BadBody` (a 400: nothing taken) when more lines were rejected than an
        answer lists: a 200 must name every line it did not take, so that a client knows
        exactly what to send again."""
        if self.rejected > MAX_REPORTED_ERRORS:
            first = "; ".join(f"{next(iter(e.values()))}: {e['error']}" for e in self.errors[:3])
            raise BadBody(
                f"{self.rejected} lines are bad, more than the {MAX_REPORTED_ERRORS} an answer "
                f"lists, so none was taken; fix them and send the body again (first: {first})"
            )


BodyKind = Literal["text", "ndjson", "items", "records"]

#: what decoding untrusted JSON may raise: msgspec's errors, but also UnicodeDecodeError (invalid
#: UTF-8 inside a string) and RecursionError (``[[[[...`` nested past msgspec's depth limit)
JSON_ERRORS = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


def json_problem(exc: BaseException, data: bytes, *, body: bool = False) -> str:
    """Why ``data`` is not JSON, for a client to read: ``exc`` is one of :data:`JSON_ERRORS`.
    With ``body``, a position names the body's line (else the byte within ``data``, a line)."""
    if isinstance(exc, RecursionError):
        return "nested too deeply (arrays or objects within each other)"
    if not isinstance(exc, UnicodeDecodeError):
        return str(exc)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as where:
        at = where.start
    else:  # msgspec found a bad string that plain decoding accepts (should not happen)
        return f"a string is not valid UTF-8: {exc.reason}"
    if body:
        line = data.count(b"\n", 0, at) + 1
        return f"a string is not valid UTF-8 (line {line})"
    return f"a string is not valid UTF-8 (byte {at + 1})"


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
        except JSON_ERRORS as exc:
            if declared_json:
                raise BadBody(f"not a JSON array: {json_problem(exc, body, body=True)}") from None
            return "text", body
    if start == b"{":
        try:
            return "items", [_decode_object(body)]  # one object, maybe over several lines
        except JSON_ERRORS:
            pass
        if declared_json:
            return "ndjson", body  # each line then accepted or rejected by its number
        first = body.lstrip().split(b"\n", 1)[0]
        try:
            _decode_object(first)
        except JSON_ERRORS:
            return "text", body
        return "ndjson", body
    return ("ndjson" if declared_json else "text"), body
