"""``POST /api/v1/ingest``: log lines over HTTP onto ``logs.raw``.

Contract with clients: a 200 answer means every accepted line is durable on the bus (the
producer was flushed before answering), so a client that retries whatever did not get a 200
never loses data (it may duplicate it; the factory's ids are positional, not content-based).
A malformed NDJSON line rejects that line only, reported by line number, never the batch.
"""

from __future__ import annotations

import hmac
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from logfactory.bus.base import BusError, Producer
from logfactory.centre.api import NodeContext
from logfactory.config import Config, SourceConfig
from logfactory.record import encode_record, make_record
from logfactory.topics import RAW

__all__ = [
    "MAX_BODY_BYTES",
    "BodyTooLarge",
    "IngestResult",
    "add_ingest_routes",
    "ingest_lines",
    "is_ndjson",
]

MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_REPORTED_ERRORS = 10
FLUSH_TIMEOUT_S = 30.0
_NDJSON_TYPES = frozenset(
    {
        "application/x-ndjson",
        "application/ndjson",
        "application/json",
        "application/jsonl",
        "application/x-jsonlines",
        "application/jsonlines",
    }
)
_decode_object = msgspec.json.Decoder(dict[str, Any]).decode


class BodyTooLarge(ValueError):
    """The (decompressed) body exceeds :data:`MAX_BODY_BYTES`."""


@dataclass(slots=True)
class IngestResult:
    accepted: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def reject(self, line_no: int, reason: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append({"line": line_no, "error": reason})


def is_ndjson(content_type: str | None) -> bool:
    """NDJSON for the JSON media types (and ``+json`` suffixes); anything else is plain text."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media in _NDJSON_TYPES or media.endswith("+json")


def _json_record_fields(
    obj: dict[str, Any], source: str, host: str
) -> tuple[str, str, str, dict[str, Any]] | str:
    """(source, host, text, meta) of one NDJSON object, or the reason it is rejected.

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


def ingest_lines(
    body: bytes,
    *,
    ndjson: bool,
    source: str,
    host: str,
    peer: str | None,
    produce: Callable[[str, bytes, bytes | None], None],
) -> IngestResult:
    """Turn each non-blank line of ``body`` into a Record and produce it to ``logs.raw``.

    Line numbers in errors are 1-based and count blank lines too, so they match the client's
    file. Runs in a worker thread: it may block on the producer's backpressure.
    """
    result = IngestResult()
    base_meta: dict[str, Any] = {"peer": peer} if peer else {}
    for index, raw in enumerate(body.split(b"\n"), start=1):
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if not line.strip():
            continue
        if not ndjson:
            record = make_record(source, host, line, base_meta)
        else:
            try:
                obj = _decode_object(line)
            except msgspec.DecodeError as exc:
                result.reject(index, f"not a JSON object: {exc}")
                continue
            fields = _json_record_fields(obj, source, host)
            if isinstance(fields, str):
                result.reject(index, fields)
                continue
            rec_source, rec_host, text, meta = fields
            if peer:
                meta.setdefault("peer", peer)
            record = make_record(rec_source, rec_host, text, meta)
        produce(RAW, encode_record(record), record.host.encode("utf-8", "surrogatepass"))
        result.accepted += 1
    return result


def _http_sources(config: Config) -> list[SourceConfig]:
    return [s for s in config.sources if s.type == "http"]


def _authorized(header: str | None, tokens: list[str]) -> bool:
    if not tokens:
        return True
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        return False
    given_bytes = given.strip().encode()
    # compare against every token (no early exit) so timing says nothing about which matched
    return sum(hmac.compare_digest(given_bytes, t.encode()) for t in tokens) > 0


async def _read_body(request: Request) -> bytes:
    """The body, decompressed when ``Content-Encoding: gzip``; BodyTooLarge past the limit."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BodyTooLarge
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", ""):
        raise ValueError(f"unsupported Content-Encoding {encoding!r}; send identity or gzip")
    inflater = zlib.decompressobj(wbits=31) if encoding == "gzip" else None
    out = bytearray()
    async for chunk in request.stream():
        if inflater is not None:
            chunk = inflater.decompress(chunk, MAX_BODY_BYTES + 1 - len(out))
        out += chunk
        if len(out) > MAX_BODY_BYTES:
            raise BodyTooLarge
    if inflater is not None and not inflater.eof:
        raise ValueError("the gzip body is truncated")
    return bytes(out)


def add_ingest_routes(app: FastAPI, ctx: NodeContext) -> None:
    http_sources = _http_sources(ctx.config)
    tokens = [s.token for s in http_sources if s.token]
    first = http_sources[0] if http_sources else None
    stats_group = f"source:{(first.name if first else None) or 'http'}"
    default_source = (first.tag or first.name if first else None) or "http"
    producer: Producer = ctx.producer

    @app.post("/api/v1/ingest")
    async def ingest(
        request: Request,
        source: str | None = Query(None, description="source tag (default: http)"),
        host: str | None = Query(None, description="host (default: the client address)"),
    ) -> JSONResponse:
        """Lines as NDJSON (JSON content types) or plain text; 200 only once they are durable."""
        if not _authorized(request.headers.get("authorization"), tokens):
            return JSONResponse(
                {"error": "missing or wrong bearer token"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        try:
            body = await _read_body(request)
        except BodyTooLarge:
            return JSONResponse(
                {"error": f"body larger than {MAX_BODY_BYTES} bytes; send smaller batches"},
                status_code=413,
            )
        except (ValueError, zlib.error) as exc:
            return JSONResponse({"error": str(exc)}, status_code=415)
        peer = request.client.host if request.client else None
        ndjson = is_ndjson(request.headers.get("content-type"))

        def work() -> IngestResult:
            result = ingest_lines(
                body,
                ndjson=ndjson,
                source=source or default_source,
                host=host or peer or "-",
                peer=peer,
                produce=producer.produce,
            )
            if result.accepted:
                producer.flush(FLUSH_TIMEOUT_S)
            return result

        try:
            result = await run_in_threadpool(work)
        except BusError as exc:
            return JSONResponse(
                {"error": f"the bus did not take the lines ({exc}); retry the request"},
                status_code=503,
            )
        ctx.registry.add_many(
            stats_group, received=result.accepted, rejected=result.rejected, bytes=len(body)
        )
        return JSONResponse(
            {"accepted": result.accepted, "rejected": result.rejected, "errors": result.errors}
        )
