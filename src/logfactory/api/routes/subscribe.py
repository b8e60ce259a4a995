"""``GET /api/v1/subscribe``: events as Server-Sent Events, resumable without loss or repeats.

Every event's ``id:`` is a cursor (:mod:`logfactory.cursor`) holding the next offset of every
partition of every subscribed topic *after* that event, so ``Last-Event-ID`` resumes exactly
after the last event the client saw. The first frame of a stream carries only an ``id:`` (the
starting cursor): a browser's EventSource records it, so a client that drops before any event
arrives still resumes from where it subscribed instead of from "latest" again.

Streams are bounded, so that subscribers cannot take the node with them (issue 13): at most
``http.max_subscribers`` at once, ``http.max_subscribers_per_client`` per client address and
``http.max_subscribers_per_credential`` per token or login, counted at admission
(:mod:`logfactory.api.sse_admission`; the rest get 503 or 429 with ``Retry-After``, counted
in /metrics); their reads share a few threads, never wait in one, and come in small batches
(:mod:`logfactory.api.sse_reads`); each stream's bus connection is a lean one (a small page
cache, no memory map). A stream's consumer is closed by whichever side finishes last (the
stream or a read still running in its thread), and its slot is given back when the response
ends, however.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from logfactory.access import Principal, Role
from logfactory.api.context import ApiState, NodeContext
from logfactory.api.responses import error_response
from logfactory.api.sse_admission import (
    RETRY_AFTER_S,
    Refusal,
    Slot,
    SubscriberSlots,
    trim_memory,
)
from logfactory.api.sse_reads import BATCH_BYTES, RECHECK_S, BusWatch, ReadGate, watch_for
from logfactory.bus.base import Bus, Consumer, LeanReader, Message, StartFrom, TopicSpec
from logfactory.cursor import CursorError, Positions, decode_cursor, encode_cursor
from logfactory.event import topic_for_type
from logfactory.subscribe import known_types

__all__ = [
    "MAX_BATCH",
    "RETRY_MS",
    "EventReader",
    "router",
    "sse_frame",
]

RETRY_MS = 2000
MAX_BATCH = 200
"""Messages per read at most (fewer when they are large: see :meth:`EventReader.want`)."""
TRIM_EVERY = 16
_EVENTS_PREFIX = len(topic_for_type(""))


def sse_frame(cursor: str, event_type: str, value: bytes) -> bytes:
    """One SSE event. Envelopes are one-line JSON; a value with line breaks is split into
    several ``data:`` lines, which SSE clients join back with newlines (JSON-equivalent)."""
    if b"\n" in value or b"\r" in value:
        data = b"".join(b"data: " + line + b"\n" for line in value.splitlines())
    else:
        data = b"data: " + value + b"\n"
    return b"id: " + cursor.encode() + b"\nevent: " + event_type.encode() + b"\n" + data + b"\n"


class EventReader:
    """A group-less consumer positioned at a cursor, safe to close from the event loop while
    one of its calls still runs in a worker thread."""

    def __init__(self, bus: Bus, topics: list[str], partitions: int) -> None:
        self._bus = bus
        self.topics = topics
        self._partitions = partitions
        self._consumer: Consumer | None = None
        self.positions: Positions = {}
        self._lock = threading.Lock()
        self._busy = False
        self._closed = False
        self._shut = False
        self._avg_bytes = BATCH_BYTES // 16  # the first read takes 16 at most

    def _guard(self) -> bool:
        with self._lock:
            if self._closed:
                return False
            self._busy = True
            return True

    def _release(self) -> None:
        with self._lock:
            self._busy = False
            closed = self._closed
        if closed:
            self._shutdown()

    def open(self, start: StartFrom, resume: Positions) -> str | None:
        """Subscribe and seek to ``resume``; the starting cursor, or None if closed meanwhile.

        Partitions a cursor does not know (added since) start from the earliest offset, so
        nothing is skipped; topics it does not hold start from ``start``.
        """
        if not self._guard():
            return None
        try:
            for topic in self.topics:
                self._bus.ensure_topic(TopicSpec(topic, self._partitions))
            consumer = self._consumer = self._bus.consumer(None, self.topics, start)
            if isinstance(consumer, LeanReader):
                consumer.lean()
            for topic, partition in consumer.assignment():
                saved = resume.get(topic)
                if saved is None:
                    continue
                if partition < len(saved) and saved[partition] >= 0:
                    consumer.seek((topic, partition), saved[partition])
                else:
                    low = self._bus.watermarks(topic).get(partition, (0, 0))[0]
                    consumer.seek((topic, partition), low)
            for (topic, partition), offset in consumer.position().items():
                offsets = self.positions.setdefault(topic, [])
                offsets.extend([-1] * (partition + 1 - len(offsets)))
                offsets[partition] = offset
            return encode_cursor(self.positions)
        finally:
            self._release()

    def want(self, max_records: int) -> int:
        """How many messages the next read may take: at most ``max_records``, and about
        BATCH_BYTES of them at the sizes seen so far (one, when a message is that large)."""
        return max(1, min(max_records, BATCH_BYTES // self._avg_bytes))

    def read(self, max_records: int) -> tuple[bytes, int]:
        """SSE frames of the messages there are now (at most ``max_records``) and how many
        there were; (b"", 0) at once if there are none: waiting is the caller's."""
        if not self._guard():
            return b"", 0
        try:
            assert self._consumer is not None
            messages = self._consumer.poll(self.want(max_records), 0)
            if messages:
                size = sum(len(m.value) for m in messages) // len(messages)
                self._avg_bytes = max(1, (self._avg_bytes + size) // 2)
            return self._frames(messages), len(messages)
        finally:
            self._release()

    def _frames(self, messages: list[Message]) -> bytes:
        parts: list[bytes] = []
        positions = self.positions
        for m in messages:
            offsets = positions.setdefault(m.topic, [])
            if m.partition >= len(offsets):
                offsets.extend([-1] * (m.partition + 1 - len(offsets)))
            offsets[m.partition] = m.offset + 1
            parts.append(sse_frame(encode_cursor(positions), m.topic[_EVENTS_PREFIX:], m.value))
        return b"".join(parts)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            busy = self._busy
        if not busy:
            self._shutdown()

    def _shutdown(self) -> None:
        with self._lock:
            if self._shut:
                return
            self._shut = True
            consumer = self._consumer
        if consumer is not None:
            consumer.close()


class _StreamResponse(StreamingResponse):
    """A stream that gives back its slot and closes its reader when the response ends, however
    it ends: finished, the client gone (Starlette then cancels the body where it waits, so the
    generator's own ``finally`` may run only when it is collected), or the server stopping."""

    def __init__(
        self, body: AsyncIterator[bytes], slot: Slot, reader: EventReader, trim: _Trim
    ) -> None:
        super().__init__(
            body,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._slot = slot
        self._reader = reader
        self._trim = trim

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._reader.close()
            self._slot.release()
            self._trim.stream_ended()


class _Trim:
    """Calls :func:`trim_memory` (in a thread: it walks the allocator's free lists) when the
    last stream has ended, and after every TRIM_EVERY ended streams while others go on."""

    def __init__(self, slots: SubscriberSlots) -> None:
        self._slots = slots
        self._ended = 0
        self._running = False

    def stream_ended(self) -> None:
        self._ended += 1
        if self._running or (self._slots.count and self._ended < TRIM_EVERY):
            return
        self._ended = 0
        self._running = True
        task = asyncio.get_running_loop().run_in_executor(None, trim_memory)
        task.add_done_callback(self._done)

    def _done(self, _task: object) -> None:
        self._running = False


def _refused(refusal: Refusal) -> JSONResponse:
    return error_response(refusal.status, refusal.error, {"Retry-After": str(RETRY_AFTER_S)})


def router(ctx: NodeContext, state: ApiState) -> APIRouter:
    """The subscribe route of the node ``ctx`` describes; its streams count in ``state``."""
    api = APIRouter()
    needs_viewer = state.auth.requires(Role.VIEWER, scoped=True)
    known = known_types(ctx.config)
    partitions = ctx.config.bus.partitions
    http = ctx.config.http
    slots = SubscriberSlots(
        http.max_subscribers,
        http.max_subscribers_per_client,
        state.subscriber_delta,
        http.max_subscribers_per_credential,
    )
    gate = ReadGate()
    watch = watch_for(ctx.bus)
    trim = _Trim(slots)

    @api.get(
        "/api/v1/subscribe",
        responses={
            400: {"description": "unknown event type, or a cursor not from this API"},
            403: {"description": "the token's scopes do not include a requested type"},
            429: {
                "description": "this client or credential holds its share of streams; `Retry-After`"
            },
            503: {"description": "the node holds its cap of streams; `Retry-After`"},
        },
    )
    async def subscribe(
        request: Request,
        types: str = Query(..., description="comma-separated event types, e.g. ALERT,JOB_STATUS"),
        start: Literal["earliest", "latest"] = Query("latest", alias="from"),
        cursor: str | None = Query(None, description="resume here (Last-Event-ID wins)"),
        caller: Principal = Depends(needs_viewer),
        limit: int | None = Query(None, ge=1, description="end after this many events"),
        idle: float | None = Query(None, gt=0, description="end after this many quiet seconds"),
    ) -> Any:
        """Server-Sent Events of the chosen types; each `id:` is a cursor, and a client that
        reconnects with it (`Last-Event-ID`, or `cursor=`) continues exactly after that event."""
        names = list(dict.fromkeys(t.strip() for t in types.split(",") if t.strip()))
        unknown = [n for n in names if n not in known]
        if not names or unknown:
            what = f"unknown event type(s) {', '.join(unknown)}" if unknown else "no event type"
            return JSONResponse(
                {"error": f"{what}; known types: {', '.join(known)}", "known": known},
                status_code=400,
            )
        denied = [n for n in names if not caller.may_read_type(n)]
        if denied:
            return error_response(
                403, f"this token's scopes do not include the event type(s) {', '.join(denied)}"
            )
        last_id = request.headers.get("last-event-id") or cursor
        try:
            resume = decode_cursor(last_id) if last_id else {}
        except CursorError as exc:
            return error_response(400, f"Last-Event-ID/cursor is not a cursor from this API: {exc}")
        # checked and counted in one step, with no await between: see sse_admission
        slot = slots.acquire(request.client.host if request.client else "", caller.key)
        if isinstance(slot, Refusal):
            state.limited(slot.limit)
            return _refused(slot)
        topics = [topic_for_type(n) for n in names]
        reader = EventReader(ctx.bus, topics, partitions)
        body = _stream(ctx, gate, watch, reader, names, start, resume, limit, idle)
        return _StreamResponse(body, slot, reader, trim)

    return api


async def _stream(
    ctx: NodeContext,
    gate: ReadGate,
    watch: BusWatch,
    reader: EventReader,
    names: list[str],
    start: StartFrom,
    resume: Positions,
    limit: int | None,
    idle: float | None,
) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    try:
        # not through the gate: opening may wait on the bus (a Kafka broker), reads must not
        first = await loop.run_in_executor(None, reader.open, start, resume)
        if first is None:
            return
        yield (f": subscribed to {','.join(names)}\nretry: {RETRY_MS}\nid: {first}\n\n").encode()
        sent = 0
        last_out = last_event = loop.time()
        while True:
            seen = watch.version(reader.topics)  # before the read: a change after it wakes us
            want = MAX_BATCH if limit is None else min(MAX_BATCH, limit - sent)
            frames, n = await gate.run(reader.read, want)
            now = loop.time()
            if n:
                yield frames
                sent += n
                last_out = last_event = now
                if limit is not None and sent >= limit:
                    return
                continue
            if idle is not None and now - last_event >= idle:
                return
            if now - last_out >= ctx.keepalive_s:
                yield b": keepalive\n\n"
                last_out = now
            due = last_out + ctx.keepalive_s
            if idle is not None:
                due = min(due, last_event + idle)
            await watch.wait(reader.topics, seen, min(due - now, RECHECK_S))
    finally:
        reader.close()
