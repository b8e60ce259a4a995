"""``GET /api/v1/subscribe``: events as Server-Sent Events, resumable without loss or repeats;
``GET /api/v1/topics/{topic}/tail``: the last (or first) messages of a topic as JSON.

Every event's ``id:`` is a cursor (:mod:`logfactory.cursor`) holding the next offset of every
partition of every subscribed topic *after* that event, so ``Last-Event-ID`` resumes exactly
after the last event the client saw. The first frame of a stream carries only an ``id:`` (the
starting cursor): a browser's EventSource records it, so a client that drops before any event
arrives still resumes from where it subscribed instead of from "latest" again.

Bus reads block, so they run in worker threads with short poll timeouts; the stream notices a
client that went away within one poll, and the consumer is closed by whichever side finishes
last (the stream or a poll still running in its thread).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import msgspec
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from logfactory.bus.base import Bus, Consumer, Message, StartFrom, TopicSpec
from logfactory.centre.api import ApiState, NodeContext
from logfactory.cursor import CursorError, Positions, decode_cursor, encode_cursor
from logfactory.event import topic_for_type
from logfactory.subscribe import known_types, tail

__all__ = [
    "MAX_SUBSCRIBERS",
    "POLL_TIMEOUT_S",
    "RETRY_MS",
    "EventReader",
    "add_sse_routes",
    "sse_frame",
]

POLL_TIMEOUT_S = 0.25
MAX_SUBSCRIBERS = 64
"""Each stream keeps one worker thread busy polling; past this, new streams get a 503."""
RETRY_MS = 2000
MAX_BATCH = 500
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
        self._topics = topics
        self._partitions = partitions
        self._consumer: Consumer | None = None
        self.positions: Positions = {}
        self._lock = threading.Lock()
        self._busy = False
        self._closed = False
        self._shut = False

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
            for topic in self._topics:
                self._bus.ensure_topic(TopicSpec(topic, self._partitions))
            consumer = self._consumer = self._bus.consumer(None, self._topics, start)
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

    def read(self, max_records: int, timeout: float) -> tuple[bytes, int]:
        """SSE frames of the next messages and how many there were ((b"", 0) if none)."""
        if not self._guard():
            return b"", 0
        try:
            assert self._consumer is not None
            messages = self._consumer.poll(max_records, timeout)
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


def _message_json(message: Message) -> dict[str, Any]:
    value: Any
    try:
        value = msgspec.json.decode(message.value)
    except msgspec.DecodeError:
        value = message.value.decode("utf-8", "replace")
    return {
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        "timestamp_ms": message.timestamp_ms,
        "key": message.key.decode("utf-8", "replace") if message.key is not None else None,
        "value": value,
    }


def add_sse_routes(app: FastAPI, ctx: NodeContext, state: ApiState) -> None:
    known = known_types(ctx.config)
    partitions = ctx.config.bus.partitions
    # own threads: the loop's default pool has only cpu+4 workers, too few for many streams
    pool = ThreadPoolExecutor(max_workers=MAX_SUBSCRIBERS, thread_name_prefix="sse-poll")

    @app.get("/api/v1/subscribe")
    async def subscribe(
        request: Request,
        types: str = Query(..., description="comma-separated event types, e.g. ALERT,JOB_STATUS"),
        start: Literal["earliest", "latest"] = Query("latest", alias="from"),
        cursor: str | None = Query(None, description="resume here (Last-Event-ID wins)"),
        limit: int | None = Query(None, ge=1, description="end after this many events"),
        idle: float | None = Query(None, gt=0, description="end after this many quiet seconds"),
    ) -> Any:
        """Server-Sent Events of the chosen types; see the module doc for ids and resuming."""
        names = list(dict.fromkeys(t.strip() for t in types.split(",") if t.strip()))
        unknown = [n for n in names if n not in known]
        if not names or unknown:
            what = f"unknown event type(s) {', '.join(unknown)}" if unknown else "no event type"
            return JSONResponse(
                {"error": f"{what}; known types: {', '.join(known)}", "known": known},
                status_code=400,
            )
        last_id = request.headers.get("last-event-id") or cursor
        try:
            resume = decode_cursor(last_id) if last_id else {}
        except CursorError as exc:
            return JSONResponse(
                {"error": f"Last-Event-ID/cursor is not a cursor from this API: {exc}"},
                status_code=400,
            )
        if state.subscribers >= MAX_SUBSCRIBERS:
            return JSONResponse(
                {"error": f"too many subscribers (limit {MAX_SUBSCRIBERS}); retry later"},
                status_code=503,
            )
        topics = [topic_for_type(n) for n in names]
        reader = EventReader(ctx.bus, topics, partitions)
        return StreamingResponse(
            _stream(ctx, state, pool, reader, names, start, resume, limit, idle),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get("/api/v1/topics/{topic}/tail")
    def topic_tail(
        topic: str,
        count: int = Query(20, ge=1, le=1000),
        start: Literal["earliest", "latest"] = Query("latest", alias="from"),
    ) -> Any:
        """The last (``from=latest``) or first (``from=earliest``) ``count`` messages."""
        if topic not in ctx.bus.topics():
            return JSONResponse({"error": f"no topic {topic!r}"}, status_code=404)
        messages = tail(ctx.bus, topic, start=start, count=count, follow=False)
        return [_message_json(m) for m in messages]


async def _stream(
    ctx: NodeContext,
    state: ApiState,
    pool: ThreadPoolExecutor,
    reader: EventReader,
    names: list[str],
    start: StartFrom,
    resume: Positions,
    limit: int | None,
    idle: float | None,
) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    state.subscriber_delta(1)
    try:
        first = await loop.run_in_executor(pool, reader.open, start, resume)
        if first is None:
            return
        yield (f": subscribed to {','.join(names)}\nretry: {RETRY_MS}\nid: {first}\n\n").encode()
        sent = 0
        last_out = last_event = loop.time()
        while True:
            want = MAX_BATCH if limit is None else min(MAX_BATCH, limit - sent)
            frames, n = await loop.run_in_executor(pool, reader.read, want, POLL_TIMEOUT_S)
            now = loop.time()
            if n:
                yield frames
                sent += n
                last_out = last_event = now
                if limit is not None and sent >= limit:
                    return
            elif idle is not None and now - last_event >= idle:
                return
            elif now - last_out >= ctx.keepalive_s:
                yield b": keepalive\n\n"
                last_out = now
    finally:
        reader.close()
        state.subscriber_delta(-1)
