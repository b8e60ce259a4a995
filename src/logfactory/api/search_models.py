"""The search routes' answers as typed models: what ``/openapi.json`` (and so the endpoint
reference in docs/http-api.md) shows, with an example of each.

The routes encode their answers with msgspec (a page holds up to ``store.max_results`` hits with
arbitrary decoded fields, which pydantic would validate field by field for nothing); the tests
validate real answers against these models, so the description cannot drift from what is sent.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AggregateAnswer",
    "AggregateBucket",
    "ContextAnswer",
    "Hit",
    "QueryErrorAnswer",
    "SearchAnswer",
]

_HIT_EXAMPLE: dict[str, Any] = {
    "id": "logs.raw/0/118734",
    "kind": "log",
    "time": "2026-12-06T09:14:03.120000Z",
    "received": "2026-12-06T09:14:03.125310Z",
    "host": "web-1",
    "source": "syslog",
    "message": "Failed password for root from 10.3.17.5 port 52113 ssh2",
    "workshop": "syslog",
    "severity": "warning",
    "pattern": "a41f9c02",
    "fields": {"program": "sshd", "pid": 4121},
    "origin": "logs.parsed/0/90211",
}


class Hit(BaseModel):
    """One stored log or event: empty columns are left out; times are RFC 3339 UTC."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_HIT_EXAMPLE]})

    id: str
    kind: str | None = Field(None, description="log or event")
    time: str | None = None
    received: str | None = None
    host: str | None = None
    source: str | None = None
    message: str | None = None
    workshop: str | None = None
    type: str | None = Field(None, description="an event's type")
    subtype: str | None = None
    severity: str | None = None
    pattern: str | None = Field(None, description="the template id")
    status: str | None = None
    fields: dict[str, Any] | None = Field(None, description="decoded fields")
    origin: str | None = Field(None, description="the bus position the store read it from")


class SearchAnswer(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "hits": [_HIT_EXAMPLE],
                    "next": "MTc2NTAxMjQ0MzEyMDAwMDAwMDpsb2dzLnJhdy8wLzExODczNA",
                    "total": 4182,
                    "timed_out": False,
                    "capped": False,
                    "took_ms": 3.4,
                    "query": "host:web-1 AND failed AND password",
                    "start": "2026-12-06T08:14:03.000000Z",
                    "end": None,
                }
            ]
        },
    )

    hits: list[Hit] = Field(description="newest first (time, then id, descending)")
    next: str | None = Field(description="cursor of the next page; null on the last page")
    total: int | None = Field(description="every match; null when not counted in time")
    timed_out: bool = Field(description="store.query_timeout cut the search short")
    capped: bool = Field(description="the engine stopped at its result cap")
    took_ms: float
    query: str = Field(description="the query as the store understood it")
    start: str | None = Field(description="the window's start (inclusive), RFC 3339")
    end: str | None = Field(description="the window's end (exclusive), RFC 3339")


class AggregateBucket(BaseModel):
    key: str | int | float = Field(
        description="histogram: the bucket's start (RFC 3339); top: the value"
    )
    count: int


class AggregateAnswer(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "op": "top",
                    "field": "host",
                    "buckets": [{"key": "web-1", "count": 912}, {"key": "db-2", "count": 301}],
                    "other": 77,
                    "missing": 0,
                    "timed_out": False,
                    "took_ms": 5.2,
                    "query": "severity:error",
                    "start": "2026-12-05T09:00:00.000000Z",
                    "end": "2026-12-06T09:00:00.000000Z",
                },
                {
                    "op": "histogram",
                    "interval": "15m",
                    "interval_ns": 900_000_000_000,
                    "buckets": [
                        {"key": "2026-12-06T08:00:00.000000Z", "count": 40},
                        {"key": "2026-12-06T08:15:00.000000Z", "count": 52},
                    ],
                    "timed_out": False,
                    "took_ms": 2.0,
                    "query": "*",
                    "start": "2026-12-06T08:00:00.000000Z",
                    "end": "2026-12-06T08:30:00.000000Z",
                },
            ]
        },
    )

    op: str = Field(description="histogram, top, distinct or count")
    field: str | None = Field(None, description="top and distinct: the column counted")
    interval: str | None = Field(None, description="histogram: the bucket width (15m)")
    interval_ns: int | None = Field(None, description="histogram: the bucket width in ns")
    buckets: list[AggregateBucket] | None = Field(
        None, description="histogram: oldest first, empty ones included; top: most first"
    )
    other: int | None = Field(None, description="top: matches with another value")
    missing: int | None = Field(None, description="top: matches without the field")
    value: int | None = Field(None, description="count: matches; distinct: different values")
    timed_out: bool
    took_ms: float
    query: str
    start: str | None
    end: str | None


class ContextAnswer(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"anchor": _HIT_EXAMPLE, "before": [], "after": [], "took_ms": 1.1}]
        },
    )

    anchor: Hit
    before: list[Hit] = Field(description="the records just before, on the same host, oldest first")
    after: list[Hit] = Field(description="the records just after, on the same host, oldest first")
    took_ms: float


class QueryErrorAnswer(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"error": "expected a value after 'host:' at column 6", "column": 6},
            ]
        }
    )

    error: str
    column: int | None = Field(None, description="where in q the mistake is (1-based)")
