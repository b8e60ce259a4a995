"""``/api/v1/patterns``: browse the pattern library and review templates over HTTP.

The library's truth is the compacted topic ``patterns.library``; these routes read it the way
``logfactory patterns list`` does and write reviews the way ``logfactory patterns mark`` does
(load, ``set_status``, publish the changed entry), so a review reaches every running factory
worker through the topic they sync from (every 0.5 s), with no restart and no other channel.

Reading the whole topic costs time proportional to the library, so a snapshot is kept for
:data:`CACHE_TTL_S`; a console polling the list re-reads at most once a second, and a review
made here drops the snapshot so the reviewer sees its own change at once. Reviews made in this
process are serialised: each one re-reads the topic before writing, so two reviews in flight
cannot write back each other's stale status. Bus work runs in worker threads, never on the loop.

Reading needs the role ``viewer``; a review changes what the factory alerts on, so it needs
``operator`` and is written to the audit trail (who, which template, what status and reason,
from where). A review's body is JSON and must say so (``Content-Type: application/json``,
:func:`logfactory.api.safety.require_json`: 415 otherwise), so a page from another origin cannot
post one as a form or ``text/plain`` without a preflight.

Listing is an expensive query (it filters the whole library): each caller's lists are
rate-limited (:mod:`logfactory.api.ratelimit`, ``http.query_rate``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from logfactory.access import Principal, Role
from logfactory.api.auth import client_address
from logfactory.api.context import ApiState, NodeContext
from logfactory.api.responses import error_response
from logfactory.api.safety import require_json
from logfactory.bus.base import Bus, BusError
from logfactory.errors import ReviewError
from logfactory.factory.patterns.entry import STATUSES, PatternEntry
from logfactory.factory.patterns.library import PatternLibrary
from logfactory.factory.patterns.topic import load_library, save_changes

__all__ = [
    "CACHE_TTL_S",
    "SEVERITIES",
    "LibraryCache",
    "ReviewError",
    "entry_json",
    "parse_review",
    "router",
]

CACHE_TTL_S = 1.0
SEVERITIES = ("info", "low", "medium", "high", "critical")
MAX_REVIEW_BYTES = 64 * 1024
MAX_REASON_CHARS = 2000
_decode_object = msgspec.json.Decoder(dict[str, Any]).decode
_encode = msgspec.json.Encoder().encode


def entry_json(entry: PatternEntry) -> dict[str, Any]:
    """Every field, defaults included (the file and topic form omits them; clients should not
    have to know the defaults)."""
    return msgspec.structs.asdict(entry)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The library as read at one moment, plus its entries newest ``last_seen`` first (ties by
    id, so pages are stable). Shared by concurrent requests: read it, never change it."""

    library: PatternLibrary
    by_recency: list[PatternEntry]


class LibraryCache:
    """A snapshot of the library no older than ``ttl_s``, loaded by one thread at a time.

    A load that was already running when :meth:`invalidate` was called is returned to its
    caller but not kept, so nobody is served a pre-review snapshot after the review answered.
    """

    def __init__(self, load: Callable[[], PatternLibrary], ttl_s: float = CACHE_TTL_S) -> None:
        self._load = load
        self._ttl_s = ttl_s
        self._lock = threading.Lock()  # one load at a time; the others wait and share it
        self._snapshot: Snapshot | None = None
        self._loaded_at = 0.0
        self._generation = 0

    def get(self) -> Snapshot:
        with self._lock:
            snap = self._snapshot
            if snap is not None and time.monotonic() - self._loaded_at < self._ttl_s:
                return snap
            generation = self._generation
            library = self._load()
            entries = library.entries()
            entries.sort(key=lambda e: e.id)
            entries.sort(key=lambda e: e.last_seen, reverse=True)
            snap = Snapshot(library, entries)
            if generation == self._generation:
                self._snapshot, self._loaded_at = snap, time.monotonic()
            return snap

    def invalidate(self) -> None:
        self._generation += 1  # read under the lock in get(); a stale load sees the change
        self._snapshot = None


@dataclass(frozen=True, slots=True)
class Review:
    status: str
    reason: str | None
    severity: str | None


def parse_review(body: bytes) -> Review:
    """``{"status": ..., "reason": ..., "severity": ...}`` -> a Review, or ReviewError.

    ``alert`` needs a non-empty reason; its severity defaults to ``high`` (as ``patterns mark``).
    ``normal`` and ``new`` carry neither reason nor severity, so sending one is refused rather
    than silently dropped.
    """
    try:
        obj = _decode_object(body)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ReviewError(f"the body must be a JSON object (UTF-8): {exc}") from exc
    unknown = sorted(set(obj) - {"status", "reason", "severity"})
    if unknown:
        raise ReviewError(f"unknown field(s) {', '.join(unknown)}; use status, reason, severity")
    status, reason, severity = obj.get("status"), obj.get("reason"), obj.get("severity")
    if status not in STATUSES:
        raise ReviewError(f"'status' must be one of {', '.join(STATUSES)}, not {status!r}")
    if reason is not None and not isinstance(reason, str):
        raise ReviewError("'reason' must be a string")
    if severity is not None and severity not in SEVERITIES:
        raise ReviewError(f"'severity' must be one of {', '.join(SEVERITIES)}, not {severity!r}")
    if status == "alert":
        reason = (reason or "").strip()
        if not reason:
            raise ReviewError("an alert needs a 'reason' (what people should know)")
        if len(reason) > MAX_REASON_CHARS:
            raise ReviewError(f"'reason' is longer than {MAX_REASON_CHARS} characters")
        return Review("alert", reason, severity or "high")
    if reason is not None or severity is not None:
        raise ReviewError(f"'reason' and 'severity' apply to status alert only, not {status!r}")
    return Review(status, None, None)


def _page(
    snap: Snapshot,
    workshop: str | None,
    status: str | None,
    q: str | None,
    limit: int,
    offset: int,
) -> bytes:
    needle = q.casefold() if q else None
    matches = [
        e
        for e in snap.by_recency
        if (workshop is None or e.workshop == workshop)
        and (status is None or e.status == status)
        and (needle is None or needle in e.template.casefold())
    ]
    page = [entry_json(e) for e in matches[offset : offset + limit]]
    return _encode({"total": len(matches), "patterns": page})


# answers the OpenAPI description declares for several routes
_BUS: dict[str, Any] = {"description": "the bus did not answer; retry"}
_UNKNOWN: dict[str, Any] = {"description": "no pattern with this id (or one it generalised)"}


def router(ctx: NodeContext, state: ApiState) -> APIRouter:
    """The pattern library's routes over the bus of the node ``ctx`` describes."""
    api = APIRouter()
    needs_operator = state.auth.requires(Role.OPERATOR)
    bus: Bus = ctx.bus
    cache = LibraryCache(lambda: load_library(bus))
    review_lock = threading.Lock()
    viewer = [Depends(state.auth.requires(Role.VIEWER))]

    @api.get(
        "/api/v1/patterns",
        responses={
            400: {"description": "unknown status"},
            429: {"description": "this caller's queries are over http.query_rate; `Retry-After`"},
            503: _BUS,
        },
        # the credential first: the query limit counts per credential
        dependencies=[*viewer, Depends(state.limit_queries)],
    )
    async def list_patterns(
        workshop: str | None = Query(None, description="only this workshop"),
        status: str | None = Query(None, description="new, normal or alert"),
        q: str | None = Query(None, description="case-insensitive substring of the template"),
        limit: int = Query(100, ge=1, le=1000),
        offset: int = Query(0, ge=0),
    ) -> Response:
        """Templates, newest ``last_seen`` first, with the total that matched the filters."""
        if status is not None and status not in STATUSES:
            return error_response(400, f"'status' must be one of {', '.join(STATUSES)}")

        def work() -> bytes:
            return _page(cache.get(), workshop, status, q, limit, offset)

        try:
            body = await run_in_threadpool(work)
        except BusError as exc:
            return error_response(503, f"the bus did not answer ({exc}); retry")
        return Response(body, media_type="application/json")

    @api.get(
        "/api/v1/patterns/{pattern_id}",
        responses={404: _UNKNOWN, 503: _BUS},
        dependencies=viewer,
    )
    async def get_pattern(pattern_id: str) -> JSONResponse:
        """One template; an id it generalised from finds the current entry."""
        try:
            snap = await run_in_threadpool(cache.get)
        except BusError as exc:
            return error_response(503, f"the bus did not answer ({exc}); retry")
        entry = snap.library.get(pattern_id)
        if entry is None:
            return error_response(404, f"no pattern {pattern_id!r}")
        return JSONResponse(entry_json(entry))

    @api.post(
        "/api/v1/patterns/{pattern_id}/review",
        responses={
            400: {"description": "the body is not a review (status, reason, severity)"},
            404: _UNKNOWN,
            413: {"description": "body too large"},
            415: {"description": "the body is not sent as application/json"},
            503: _BUS,
        },
        # the credential first: a request without one is a 401 whatever its body
        dependencies=[Depends(needs_operator), Depends(require_json)],
    )
    async def review_pattern(
        pattern_id: str,
        request: Request,
        caller: Principal = Depends(needs_operator),
    ) -> JSONResponse:
        """Mark a template normal, alert (with a reason) or back to new; workers apply it
        within a second. Answers with the entry as stored."""
        body = await request.body()
        if len(body) > MAX_REVIEW_BYTES:
            return error_response(413, f"body larger than {MAX_REVIEW_BYTES} bytes")
        try:
            review = parse_review(body)
        except ReviewError as exc:
            return error_response(400, str(exc))

        def work() -> PatternEntry | None:
            with review_lock:
                library = load_library(bus)
                try:
                    library.set_status(pattern_id, review.status, review.reason, review.severity)
                except KeyError:
                    return None
                save_changes(bus, library)
                cache.invalidate()
                entry = library.get(pattern_id)
            ctx.access.audit(
                caller.key,
                "pattern_reviewed",
                target=pattern_id,
                address=client_address(request),
                detail={
                    "status": review.status,
                    "reason": review.reason,
                    "severity": review.severity,
                },
            )
            return entry

        try:
            entry = await run_in_threadpool(work)
        except BusError as exc:
            return error_response(503, f"the review was not stored ({exc}); retry")
        if entry is None:
            return error_response(404, f"no pattern {pattern_id!r}")
        return JSONResponse(entry_json(entry))

    return api
