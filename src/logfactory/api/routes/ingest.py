"""``POST /api/v1/ingest``: log lines over HTTP onto ``logs.raw``.

Contract with clients:

* **200** means every accepted record is durable: the producer was flushed before answering
  (with the collector's spool in front of the bus, "durable" is "on the bus or in the spool's
  fsynced file"). A client that retries whatever did not get a 200 therefore never loses data;
  it may duplicate some (the factory's ids are positional, not content-based). A malformed
  NDJSON line (or array item) rejects that line only, reported by number, never the batch:
  bad JSON, invalid UTF-8 in a string, nesting too deep, a line longer than the source's
  ``max_frame_bytes``. The whole body is checked before any record is produced, so an answer
  other than 200 means nothing of the body is on the bus (a bus failure, 503, aside).
* **429** with ``Retry-After`` (seconds) under overload, before the body is read: more than
  :data:`BACKLOG_LIMIT` records wait for the bus, the spool is over its size limit, or
  :data:`MAX_IN_FLIGHT` requests are already being processed. Nothing is buffered beyond that,
  so memory stays under ``MAX_IN_FLIGHT * max_body_bytes``.
* **413** when the body, before or after decompression, exceeds the source's
  ``max_body_bytes``; **415** for an unknown ``Content-Encoding``; **400** for a body that does
  not decompress (or has too many compressed members, or costs too much CPU to decompress), or
  a JSON array that does not parse, with the reason; **401** without a valid credential,
  **403** for one whose role is neither ``ingest`` nor ``admin``; **503** when the bus failed
  (retry). Nothing of a refused body is produced.

Bodies: see :mod:`logfactory.api.ingest_body` (NDJSON, JSON arrays of objects or strings, plain
lines; identity, gzip, zstd, lz4). Sources: each ``type: http`` entry is one source with its own
token, limit and stats (``source:<name>``: received, bytes, rejected, refused, throttled). A
request needs the role ``ingest`` (or ``admin``): it carries the bearer token of an http source,
and belongs to that source, or an API token (or login) with that role, and belongs to the first
source without a token of its own (the first source when every one has a token).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from logfactory.access import Principal, Role
from logfactory.api.context import ApiState, NodeContext
from logfactory.api.ingest_body import (
    BadBody,
    BodyTooLarge,
    IngestResult,
    UnsupportedEncoding,
    decompress,
    encoding_of,
    media_type,
    split_body,
)
from logfactory.api.ingest_records import (
    DEFAULT_MAX_LINE_BYTES,
    ingest_items,
    ingest_lines,
)
from logfactory.api.ingest_shipped import ingest_shipped
from logfactory.api.responses import error_response
from logfactory.bus.base import Backlog, BusError, Producer, SpoolState
from logfactory.collect.agent import BACKLOG_HIGH
from logfactory.config import Config

log = logging.getLogger(__name__)

__all__ = [
    "BACKLOG_LIMIT",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_LINE_BYTES",
    "MAX_IN_FLIGHT",
    "IngestResult",
    "IngestSource",
    "Overload",
    "ingest_items",
    "ingest_lines",
    "ingest_sources",
    "is_ndjson",
    "router",
    "unrouted_tags",
    "unrouted_warning",
]

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
#: records waiting for the bus (the producer's ``pending()``) above which requests get a 429;
#: above the agent's BACKLOG_HIGH, so other sources' normal throttling does not refuse HTTP
BACKLOG_LIMIT = BACKLOG_HIGH + 20_000
#: requests decompressing/producing/flushing at once; more get a 429
MAX_IN_FLIGHT = 8
RETRY_AFTER_S = 1
RETRY_AFTER_SPOOL_FULL_S = 10
FLUSH_TIMEOUT_S = 30.0
_JSON_TYPES = frozenset(
    {
        "application/x-ndjson",
        "application/ndjson",
        "application/json",
        "application/jsonl",
        "application/x-jsonlines",
        "application/jsonlines",
    }
)


@dataclass(frozen=True, slots=True)
class IngestSource:
    """One ``type: http`` source as the endpoint uses it."""

    name: str  # stats group ``source:<name>``
    tag: str  # the records' default ``source``
    token: str | None
    max_body: int
    max_line: int = DEFAULT_MAX_LINE_BYTES  # the source's ``max_frame_bytes``


def ingest_sources(config: Config) -> list[IngestSource]:
    """The configured http sources; one open default source when none is configured."""
    out = [
        IngestSource(
            name=s.ingest_name,
            tag=s.tag or s.name or "http",
            token=s.token or None,
            max_body=int(s.max_body_bytes),
            max_line=max(1, s.max_frame_bytes),
        )
        for s in config.sources
        if s.type == "http"
    ]
    return out or [IngestSource("http", "http", None, DEFAULT_MAX_BODY_BYTES)]


def source_for(sources: list[IngestSource], caller: Principal) -> IngestSource:
    """The source a request of ``caller`` posts to (see the module's docstring)."""
    if caller.kind == "source":
        for s in sources:
            if s.name == caller.name:
                return s
    return next((s for s in sources if not s.token), sources[0])


def is_ndjson(content_type: str | None) -> bool:
    """True for the JSON media types (and ``+json`` suffixes)."""
    media = media_type(content_type)
    return media in _JSON_TYPES or media.endswith("+json")


def unrouted_tags(config: Config, tags: set[str]) -> list[str]:
    """The tags among ``tags`` that the factory of this configuration cannot decode: no
    ``factory.routes`` entry and no workshop of that name (their records are dead-lettered)."""
    routes, workshops = config.factory.routes, config.workshops
    return sorted(t for t in tags if t not in routes and t not in workshops)


def unrouted_warning(tag: str) -> str:
    return (
        f"source tag {tag!r} has no route: the factory sends its records to logs.deadletter; "
        f"use ?source= with a tag it knows, or add `{tag}: WORKSHOP` under factory.routes"
    )


class Overload:
    """When a request must be turned away. What the producer can tell (a spool's state, a
    backlog) is found once, when the routes are built, not probed per request."""

    def __init__(self, producer: Producer) -> None:
        self._state = producer.state if isinstance(producer, SpoolState) else None
        self._pending = producer.pending if isinstance(producer, Backlog) else None

    def __call__(self, in_flight: int) -> tuple[str, int] | None:
        """(reason, Retry-After seconds) when a request must be turned away, else None."""
        if in_flight >= MAX_IN_FLIGHT:
            return f"{in_flight} ingest requests are in progress", RETRY_AFTER_S
        if self._state is not None:
            st = self._state()
            if int(st.get("bytes", 0)) > int(st.get("max_bytes", 1 << 62)):
                return "the bus is unreachable and the spool is full", RETRY_AFTER_SPOOL_FULL_S
        if self._pending is not None:
            backlog = int(self._pending())
            if backlog > BACKLOG_LIMIT:
                return f"{backlog} records wait for the bus", RETRY_AFTER_S
        return None


async def _read_raw(request: Request, limit: int) -> bytes:
    """The body as sent; BodyTooLarge as soon as it passes ``limit`` (compressed bodies are
    capped too: a compressed body larger than the limit would not fit once inflated)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    out = bytearray()
    async for chunk in request.stream():
        out += chunk
        if len(out) > limit:
            raise BodyTooLarge
    return bytes(out)


def _ingest_body(
    producer: Producer,
    src: IngestSource,
    raw: bytes,
    encoding: Any,
    content_type: str | None,
    source: str,
    host: str | None,
    peer: str | None,
) -> tuple[IngestResult, int]:
    """Inflate and split one request body and produce its records (in a worker thread): the
    result and the inflated size. Raises what :func:`decompress` and :func:`split_body` raise
    (nothing produced then), or BusError."""
    body = decompress(raw, encoding, src.max_body)
    kind, payload = split_body(body, content_type)
    common: dict[str, Any] = {
        "source": source,
        "host": host or peer or "-",
        "peer": peer,
        "produce": producer.produce,
    }
    if kind == "records":  # an edge collector's own records
        result = ingest_shipped(payload, producer.produce)
    elif kind == "items":
        result = ingest_items(payload, max_line=src.max_line, **common)
    else:
        result = ingest_lines(payload, ndjson=kind == "ndjson", max_line=src.max_line, **common)
    if result.accepted:
        producer.flush(FLUSH_TIMEOUT_S)  # the 200 the caller sends promises durability
    return result, len(body)


def router(ctx: NodeContext, state: ApiState) -> APIRouter:
    """The ingest route of the node ``ctx`` describes, one source per ``type: http`` entry."""
    api = APIRouter()
    needs_ingest = state.auth.requires(Role.INGEST, scoped=True)
    sources = ingest_sources(ctx.config)
    producer: Producer = ctx.producer
    overload = Overload(producer)
    registry = ctx.registry
    in_flight = 0  # only touched on the event loop
    logged_unrouted: set[str] = set()  # each unrouted tag is logged once, not per request

    @api.post(
        "/api/v1/ingest",
        responses={
            400: {"description": "the body cannot be decoded (bad compression, not JSON)"},
            413: {"description": "the body, inflated or not, is larger than the source allows"},
            415: {"description": "a Content-Encoding other than gzip, zstd or lz4"},
            429: {"description": "the node is overloaded; retry after `Retry-After` seconds"},
            503: {"description": "the bus did not take the lines; nothing kept, retry"},
        },
    )
    async def ingest(
        request: Request,
        source: str | None = Query(None, description="source tag (default: the http source's)"),
        host: str | None = Query(None, description="host (default: the client address)"),
        caller: Principal = Depends(needs_ingest),
    ) -> JSONResponse:
        """NDJSON, JSON arrays or plain lines, optionally gzip/zstd/lz4; 200 once durable."""
        nonlocal in_flight
        src = source_for(sources, caller)
        group = f"source:{src.name}"
        try:
            encoding = encoding_of(request.headers.get("content-encoding"))
        except UnsupportedEncoding as exc:
            registry.add(group, "refused")
            return error_response(415, str(exc))
        busy = overload(in_flight)
        if busy is not None:
            reason, retry_after = busy
            registry.add(group, "throttled")
            return error_response(
                429, f"overloaded: {reason}; retry later", {"Retry-After": str(retry_after)}
            )
        in_flight += 1
        try:
            return await _handle(request, src, encoding, source, host)
        finally:
            in_flight -= 1

    async def _handle(
        request: Request, src: IngestSource, encoding: Any, source: str | None, host: str | None
    ) -> JSONResponse:
        group = f"source:{src.name}"
        too_large = f"body larger than {src.max_body} bytes; send smaller batches"
        try:
            raw = await _read_raw(request, src.max_body)
        except BodyTooLarge:
            registry.add(group, "refused")
            return error_response(413, too_large)
        peer = request.client.host if request.client else None
        content_type = request.headers.get("content-type")

        def work() -> tuple[IngestResult, int]:
            tag = source or src.tag
            return _ingest_body(producer, src, raw, encoding, content_type, tag, host, peer)

        try:
            result, size = await run_in_threadpool(work)
        except BodyTooLarge:
            registry.add(group, "refused")
            return error_response(413, too_large)
        except BadBody as exc:
            registry.add(group, "refused")
            return error_response(400, str(exc))
        except BusError as exc:
            return error_response(
                503,
                f"the bus did not take the lines ({exc}); retry the request",
                {"Retry-After": str(RETRY_AFTER_S)},
            )
        registry.add_many(group, received=result.accepted, rejected=result.rejected, bytes=size)
        answer: dict[str, Any] = {
            "accepted": result.accepted,
            "rejected": result.rejected,
            "errors": result.errors,
        }
        unrouted = unrouted_tags(ctx.config, result.tags)
        if unrouted:
            answer["warnings"] = [unrouted_warning(tag) for tag in unrouted]
            for tag in unrouted:
                if tag not in logged_unrouted and len(logged_unrouted) < 1000:
                    logged_unrouted.add(tag)
                    log.warning("HTTP ingest (%s): %s", src.name, unrouted_warning(tag))
        return JSONResponse(answer)

    return api
