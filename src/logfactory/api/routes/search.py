"""The log store's routes: ``/api/v1/search``, ``/api/v1/aggregate``, ``/api/v1/context`` and
``/api/v1/export`` (viewer and above; scoped tokens refused, as on every route that reads
beyond a topic).

Each parses ``q`` with the one query language (:func:`logfactory.store.query.parser.parse_query`;
``since``/``until`` take ``-15m``, ``-7d``, ``now``, RFC 3339 or a date) and asks the API
process's one shared reader (:class:`~logfactory.api.store_handle.StoreHandle`). Engine work
runs in worker threads, never on the event loop, under ``store.query_timeout``; an answer cut
short says so (``timed_out``, ``capped``). Searches are expensive queries: each caller's are
rate-limited like topic tails (``http.query_rate``). An export is written to the audit trail
(who exported which query, from where), since it takes a whole result out of the node.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse

from logfactory.access import Principal, Role
from logfactory.api.auth import client_address
from logfactory.api.context import ApiState, NodeContext
from logfactory.api.export import MEDIA_TYPES, ExportPlan, Format, export_chunks
from logfactory.api.responses import error_response
from logfactory.api.search_models import (
    AggregateAnswer,
    ContextAnswer,
    QueryErrorAnswer,
    SearchAnswer,
)
from logfactory.api.search_params import (
    build_query,
    json_answer,
    parse_fields,
    project,
    rfc3339,
    store_refusal,
    took_ms,
    value_field,
)
from logfactory.api.store_handle import StoreHandle
from logfactory.errors import QueryError, StoreError
from logfactory.store.document import StoredDoc
from logfactory.store.engine import Cursor, StoreReader
from logfactory.store.query.intervals import (
    auto_interval,
    check_buckets,
    format_interval,
    parse_interval,
)
from logfactory.store.query.render import to_text
from logfactory.store.query.tree import Query as StoreQuery

__all__ = ["HISTOGRAM_DEFAULT_SINCE", "MAX_CONTEXT", "router"]

HISTOGRAM_DEFAULT_SINCE = "-24h"
MAX_CONTEXT = 500

Op = Literal["histogram", "top", "distinct", "count"]

_Q = Query(
    "",  # its length is the parser's to refuse (a 400 with the column), within the head limit
    description='the query: words, "a phrase", prefix*, field:value, field:>=10, '
    "AND/OR/NOT, parentheses (empty: everything)",
    examples=["host:web-1 AND severity:error", "failed password user:root", "sshd* OR kernel"],
)
_SINCE = Query(None, description="window start: -15m, -7d, now, RFC 3339 or a date")
_UNTIL = Query(None, description="window end (exclusive), same forms; default now")
_FIELDS = Query(
    None,
    description="columns to keep, comma-separated (id always): host,message,fields.user",
    examples=["time,host,severity,message"],
)
_REFUSALS: dict[int | str, dict[str, Any]] = {
    400: {"model": QueryErrorAnswer, "description": "the query is wrong: where and what"},
    429: {"description": "this caller's queries are over http.query_rate; `Retry-After`"},
    503: {"description": "the store is down or not open yet; `Retry-After`"},
}


def _window(query: StoreQuery) -> dict[str, Any]:
    return {"query": to_text(query.where), "start": rfc3339(query.start), "end": rfc3339(query.end)}


def _histogram_window(query: StoreQuery, now_ns: int) -> StoreQuery:
    end = query.end if query.end is not None else now_ns
    start = query.start if query.start is not None else end - 86_400 * 10**9
    if start >= end:
        raise QueryError("since must come before until")
    return replace(query, start=start, end=end)


def _interval(text: str | None, start: int, end: int) -> int:
    """The bucket width ``text`` says (refused when it makes too many buckets), or one
    chosen from the window."""
    if not text:
        return auto_interval(start, end)
    width = parse_interval(text)
    check_buckets(start, end, width)
    return width


def _aggregate(
    reader: StoreReader,
    query: StoreQuery,
    op: Op,
    field: str | None,
    size: int,
    interval: str | None,
    timeout: float,
) -> dict[str, Any]:
    """The ``op`` answer's own members (op, buckets, value, ...)."""
    if op == "count":
        return {"op": op, "value": reader.count(query, timeout), "timed_out": False}
    if op == "histogram":
        width = _interval(interval, query.start or 0, query.end or 0)
        hist = reader.histogram(query, width, timeout)
        buckets = [{"key": rfc3339(int(b.key)), "count": b.count} for b in hist.buckets]
        return {
            "op": op, "interval": format_interval(hist.interval), "interval_ns": hist.interval,
            "buckets": buckets, "timed_out": hist.timed_out,
        }  # fmt: skip
    if field is None:
        raise QueryError(f"op={op} needs field= (host, severity, type, pattern, fields.user...)")
    column = value_field(field)
    if op == "distinct":
        return {"op": op, "field": column, "value": reader.distinct(query, column, timeout)}
    top = reader.top(query, column, size, timeout)
    return {
        "op": op, "field": column, "other": top.other, "missing": top.missing,
        "buckets": [{"key": b.key, "count": b.count} for b in top.buckets],
        "timed_out": top.timed_out,
    }  # fmt: skip


def router(ctx: NodeContext, state: ApiState) -> APIRouter:  # noqa: C901 - four routes
    """The store's routes, over one reader of ``ctx.config``'s store for the whole app."""
    api = APIRouter()
    store = ctx.config.store
    handle = StoreHandle(ctx.config)
    state.on_close(handle.close)
    timeout = float(store.query_timeout)
    needs_viewer = state.auth.requires(Role.VIEWER)
    guarded = [Depends(needs_viewer), Depends(state.limit_queries)]  # credential first

    @api.get(
        "/api/v1/search",
        response_model=SearchAnswer,
        response_description="a page of hits, newest first",
        responses=_REFUSALS,
        dependencies=guarded,
    )
    async def search(
        q: str = _Q,
        since: str | None = _SINCE,
        until: str | None = _UNTIL,
        limit: int = Query(100, ge=1, description="hits per page, at most store.max_results"),
        cursor: str | None = Query(None, description="`next` of the previous page"),
        fields: str | None = _FIELDS,
    ) -> Response:
        """Matching logs and events, newest first, a page at a time: pass the answer's `next`
        as `cursor` for the next page (pages stay stable while the store writes)."""
        started = time.perf_counter()
        if limit > store.max_results:
            return store_refusal(
                QueryError(f"limit: at most {store.max_results} (store.max_results)")
            )

        def work() -> dict[str, Any]:
            query = build_query(q, since, until, time.time_ns())
            chosen = parse_fields(fields)
            after = Cursor.decode(cursor) if cursor else None
            page = handle.reader().search(query, limit, after, timeout)
            return {
                "hits": [project(doc, chosen) for doc in page.hits],
                "next": page.next.encode() if page.next is not None else None,
                "total": page.total, "timed_out": page.timed_out, "capped": page.capped,
                **_window(query),
            }  # fmt: skip

        try:
            body = await run_in_threadpool(work)
        except StoreError as exc:
            return store_refusal(exc)
        return json_answer({**body, "took_ms": took_ms(started)})

    @api.get(
        "/api/v1/aggregate",
        response_model=AggregateAnswer,
        response_description="the counts op asked for",
        responses=_REFUSALS,
        dependencies=guarded,
    )
    async def aggregate(
        op: Op = Query(description="histogram, top, distinct or count", examples=["top"]),
        q: str = _Q,
        since: str | None = _SINCE,
        until: str | None = _UNTIL,
        field: str | None = Query(
            None, description="top/distinct: host, severity, type, pattern, fields.user, ..."
        ),
        size: int = Query(10, ge=1, le=1000, description="top: how many values"),
        interval: str | None = Query(
            None, description="histogram: bucket width (1m, 15m, 1h); default from the window"
        ),
    ) -> Response:
        """Statistics of the matches. `histogram`: counts per time bucket (the window defaults
        to the last 24 hours, the width to 60-120 buckets over it); `top`: the most frequent
        values of `field` (counts by type, host, severity or template are
        `op=top&field=type|host|severity|pattern`); `distinct`: how many different values
        (approximate above 3,000); `count`: how many match."""
        started = time.perf_counter()

        def work() -> dict[str, Any]:
            now = time.time_ns()
            since_given = HISTOGRAM_DEFAULT_SINCE if op == "histogram" and not since else since
            query = build_query(q, since_given, until, now)
            if op == "histogram":
                query = _histogram_window(query, now)
            answer = _aggregate(handle.reader(), query, op, field, size, interval, timeout)
            return {**answer, **_window(query)}

        try:
            body = await run_in_threadpool(work)
        except StoreError as exc:
            return store_refusal(exc)
        return json_answer({"timed_out": False, **body, "took_ms": took_ms(started)})

    @api.get(
        "/api/v1/context",
        response_model=ContextAnswer,
        response_description="the record and its neighbours on its host",
        responses={**_REFUSALS, 404: {"description": "no record has this id"}},
        dependencies=guarded,
    )
    async def context(
        id: str = Query(description="a hit's id", examples=["logs.raw/0/118734"]),
        before: int = Query(10, ge=0, le=MAX_CONTEXT, description="records before it"),
        after: int = Query(10, ge=0, le=MAX_CONTEXT, description="records after it"),
    ) -> Response:
        """A record and the records just before and after it on the same host, by time: what
        else happened there at that moment."""
        started = time.perf_counter()

        def work() -> dict[str, Any] | None:
            found = handle.reader().context(id, before, after)
            if found is None:
                return None
            return {
                "anchor": project(found.anchor, None),
                "before": [project(d, None) for d in found.before],
                "after": [project(d, None) for d in found.after],
            }

        try:
            body = await run_in_threadpool(work)
        except StoreError as exc:
            return store_refusal(exc)
        if body is None:
            return error_response(404, f"no stored record has the id {id!r}")
        return json_answer({**body, "took_ms": took_ms(started)})

    @api.get(
        "/api/v1/export",
        response_class=StreamingResponse,
        responses={
            **_REFUSALS,
            200: {
                "description": "the matches, newest first, streamed; a last line says when "
                "the export was cut short (export_max, export_timeout)",
                "content": {
                    "application/x-ndjson": {"example": '{"id":"logs.raw/0/1","kind":"log"}\n'},
                    "text/csv": {"example": "id,time,host,message\nlogs.raw/0/1,...\n"},
                },
            },
        },
        dependencies=guarded,
    )
    async def export(
        request: Request,
        q: str = _Q,
        since: str | None = _SINCE,
        until: str | None = _UNTIL,
        format: Format = Query("ndjson", description="ndjson or csv"),
        fields: str | None = _FIELDS,
        caller: Principal = Depends(needs_viewer),
    ) -> Response:
        """Every match, newest first, as NDJSON (one hit per line) or CSV (a header row;
        decoded fields as one JSON column `fields`, or chosen `fields.X` columns). Streamed
        with bounded memory, at most `store.export_max` records; written to the audit trail."""
        address = client_address(request)

        def begin() -> tuple[ExportPlan, Iterator[StoredDoc]]:
            query = build_query(q, since, until, time.time_ns())
            chosen = parse_fields(fields)
            reader = handle.reader()
            matches = reader.count(query, timeout)
            plan = ExportPlan(format, chosen, store.export_max, matches)
            docs = reader.scan(query, store.export_max, float(store.export_timeout))
            first = next(docs, None)  # the first page's refusal is still a 400 or 503
            primed = itertools.chain([first], docs) if first is not None else iter(())
            ctx.access.audit(
                caller.key, "store_exported", target=q, address=address,
                detail={"format": format, "since": since, "until": until, "fields": fields,
                        "matches": matches, "limit": store.export_max},
            )  # fmt: skip
            return plan, primed

        try:
            plan, docs = await run_in_threadpool(begin)
        except StoreError as exc:
            return store_refusal(exc)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        headers = {
            "Content-Disposition": f'attachment; filename="logfactory-{stamp}.{format}"',
            "X-Export-Limit": str(plan.cap),
        }
        if plan.matches is not None:
            headers["X-Export-Matches"] = str(plan.matches)
        return StreamingResponse(
            export_chunks(plan, docs), media_type=MEDIA_TYPES[format], headers=headers
        )

    return api
