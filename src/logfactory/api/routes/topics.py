"""``GET /api/v1/topics/{topic}/tail``: the last (or first) messages of a topic as JSON.

A look at what is on the bus now (``logfactory tail`` over HTTP), not a stream: applications
that want every event subscribe (:mod:`logfactory.api.routes.subscribe`). Values that are JSON
are shown as JSON, others as text. The factory's own topics (its saved state, the pattern
library's log) are never served: they are internals, and the library has its own routes.
A tail reads up to 1,000 messages, so it is an expensive query: each caller's are rate-limited
(:mod:`logfactory.api.ratelimit`, ``http.query_rate``).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from fastapi import APIRouter, Depends, Query

from logfactory.access import Principal, Role
from logfactory.api.context import ApiState, NodeContext
from logfactory.api.responses import error_response
from logfactory.bus.base import Message
from logfactory.subscribe import tail
from logfactory.topics import PATTERNS, STATE

__all__ = ["INTERNAL_TOPICS", "message_json", "router"]

#: topics no HTTP route serves
INTERNAL_TOPICS = frozenset({STATE, PATTERNS})


def message_json(message: Message) -> dict[str, Any]:
    """A bus message as the API shows it: its value decoded when it is JSON."""
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


def router(ctx: NodeContext, state: ApiState) -> APIRouter:
    """The topic routes over the bus of the node ``ctx`` describes."""
    api = APIRouter()
    needs_viewer = state.auth.requires(Role.VIEWER, scoped=True)
    limited = Depends(state.limit_queries)

    @api.get(
        "/api/v1/topics/{topic}/tail",
        responses={
            403: {"description": "the token's scopes do not include this topic"},
            404: {"description": "no such topic, or one not served over HTTP"},
            429: {"description": "this caller's queries are over http.query_rate; `Retry-After`"},
        },
        # the credential first: the query limit counts per credential
        dependencies=[Depends(needs_viewer), limited],
    )
    def topic_tail(
        topic: str,
        caller: Principal = Depends(needs_viewer),
        count: int = Query(20, ge=1, le=1000),
        start: Literal["earliest", "latest"] = Query("latest", alias="from"),
    ) -> Any:
        """The last (``from=latest``) or first (``from=earliest``) ``count`` messages."""
        if topic in INTERNAL_TOPICS or topic not in ctx.bus.topics():
            return error_response(404, f"no topic {topic!r} is served here")
        if not caller.may_read_topic(topic):
            return error_response(403, f"this token's scopes do not include the topic {topic!r}")
        messages = tail(ctx.bus, topic, start=start, count=count, follow=False)
        return [message_json(m) for m in messages]

    return api
