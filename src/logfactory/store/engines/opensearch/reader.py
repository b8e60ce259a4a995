"""The OpenSearch reader: searches, counts and aggregations over the store's daily indices.

Order is the contract's: ``time`` descending, ties by ``id`` descending (a keyword sorts by its
UTF-8 bytes, which is code-point order, as Python compares strings). Pages continue with
``search_after`` on that pair, so a page never shifts when new records arrive elsewhere in
time, and there is no 10,000-hit window. Every read sends its deadline in the body
(``timeout``, so shards answer with what they have: ``timed_out``) and waits a little longer
on the socket; an engine that does not answer raises :class:`StoreUnavailable`, a query it
refuses (400) raises :class:`QueryError`.

Histograms count on ``tms`` (``time`` in milliseconds) when the interval is a whole number of
milliseconds, so bucket boundaries are exact (:mod:`.mapping` says why); a finer interval
counts on ``time`` itself, exact to about 256 ns. Only buckets holding something come back
from the cluster; the empty ones in the window are filled in here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Final

from opensearchpy import OpenSearch
from opensearchpy.exceptions import OpenSearchException, TransportError

from logfactory.config.store import OpenSearchConfig
from logfactory.errors import QueryError
from logfactory.store.document import StoredDoc
from logfactory.store.engine import (
    Bucket,
    Context,
    Cursor,
    Histogram,
    SearchPage,
    StoreStats,
    TopValues,
)
from logfactory.store.engines.opensearch.client import describe, make_client, unavailable
from logfactory.store.engines.opensearch.compile import compile_query, sort_field
from logfactory.store.engines.opensearch.indices import store_stats
from logfactory.store.engines.opensearch.mapping import (
    INDEXED_ONLY,
    doc_from_source,
    index_patterns,
)
from logfactory.store.query.tree import Query, Term

__all__ = ["OpenSearchReader"]

NEWEST_FIRST: Final = [{"time": "desc"}, {"id": "desc"}]
OLDEST_FIRST: Final = [{"time": "asc"}, {"id": "asc"}]
PAGE_MAX: Final = 10_000
"""The most hits one request returns (OpenSearch's ``index.max_result_window``)."""
SCAN_PAGE: Final = 1000
SOCKET_GRACE_S: Final = 5.0
PRECISION: Final = 3000
NS_PER_MS: Final = 1_000_000
MAX_BUCKETS: Final = 10_000
"""The most buckets one histogram may have (as on the embedded engine)."""
MAX_TOP: Final = 1_000
_LENIENT: Final = {"ignore_unavailable": "true", "allow_no_indices": "true"}


class OpenSearchReader:
    """A :class:`~logfactory.store.engine.StoreReader` on an OpenSearch cluster."""

    def __init__(self, config: OpenSearchConfig) -> None:
        self._config = config
        self._client: OpenSearch = make_client(config)
        self._where = ",".join(index_patterns(config.index_prefix))

    def _search(self, body: dict[str, Any], timeout_s: float, doing: str) -> dict[str, Any]:
        body = {**body, "timeout": f"{max(1, int(timeout_s * 1000))}ms"}
        if body.get("size"):  # hits carry the document as stored, not its indexed copies
            body.setdefault("_source", {"excludes": list(INDEXED_ONLY)})
        try:
            answer: dict[str, Any] = self._client.search(
                index=self._where,
                body=body,
                params={**_LENIENT, "request_timeout": timeout_s + SOCKET_GRACE_S},
            )
        except TransportError as exc:
            if isinstance(exc.status_code, int) and exc.status_code == 400:
                raise QueryError(f"OpenSearch refused the query: {describe(exc)}") from exc
            raise unavailable(self._config, doing, exc) from exc
        except OpenSearchException as exc:
            raise unavailable(self._config, doing, exc) from exc
        return answer

    # -- hits -------------------------------------------------------------------------------

    def search(
        self,
        query: Query,
        limit: int,
        after: Cursor | None = None,
        timeout_s: float = 10.0,
    ) -> SearchPage:
        if limit < 1:
            raise QueryError("a page holds at least one hit")
        size = min(limit, PAGE_MAX - 1)
        body: dict[str, Any] = {
            "query": compile_query(query),
            "sort": NEWEST_FIRST,
            "size": size + 1,  # one more than asked: is there a next page?
            "track_total_hits": True,
        }
        if after is not None:
            body["search_after"] = [after.time, after.id]
        answer = self._search(body, timeout_s, "a search")
        found = answer["hits"]["hits"]
        hits = [doc_from_source(hit["_source"]) for hit in found[:size]]
        total = answer["hits"]["total"]
        more = len(found) > size
        return SearchPage(
            hits=hits,
            next=Cursor(hits[-1].time, hits[-1].id) if more else None,
            total=int(total["value"]) if exact_total(answer) else None,
            timed_out=bool(answer.get("timed_out")),
            capped=limit > size,
        )

    def scan(self, query: Query, cap: int, timeout_s: float) -> Iterator[StoredDoc]:
        deadline = time.monotonic() + timeout_s
        cursor: Cursor | None = None
        given = 0
        while given < cap:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            page = self.search(query, min(SCAN_PAGE, cap - given), cursor, left)
            yield from page.hits
            given += len(page.hits)
            if page.next is None or page.timed_out:
                return
            cursor = page.next

    def count(self, query: Query, timeout_s: float = 10.0) -> int:
        body = {"query": compile_query(query), "size": 0, "track_total_hits": True}
        answer = self._search(body, timeout_s, "a count")
        if answer.get("timed_out"):
            raise QueryError(
                f"counting took longer than the query timeout ({timeout_s:g}s): "
                "narrow the time range"
            )
        return int(answer["hits"]["total"]["value"])

    # -- aggregations -----------------------------------------------------------------------

    def histogram(self, query: Query, interval: int, timeout_s: float = 10.0) -> Histogram:
        if query.start is None or query.end is None:
            raise QueryError("a histogram needs a time range: give a start and an end")
        if interval <= 0:
            raise QueryError("a histogram's interval must be more than 0")
        first = query.start - query.start % interval
        wanted = max(0, -(-(query.end - first) // interval))
        if wanted > MAX_BUCKETS:
            raise QueryError(
                f"an interval of {interval} ns gives {wanted} buckets over this range; at most "
                f"{MAX_BUCKETS} are allowed: choose a wider interval or a shorter range"
            )
        exact_ms = interval % NS_PER_MS == 0
        scale = NS_PER_MS if exact_ms else 1
        agg = {
            "histogram": {
                "field": "tms" if exact_ms else "time",
                "interval": interval // scale,
                "min_doc_count": 1,
            }
        }
        body = {"query": compile_query(query), "size": 0, "aggs": {"h": agg}}
        answer = self._search(body, timeout_s, "a histogram")
        counts: dict[int, int] = {}
        for raw in answer["aggregations"]["h"]["buckets"]:
            start = round(raw["key"]) * scale
            counts[start] = counts.get(start, 0) + int(raw["doc_count"])
        # Empty buckets are filled in here rather than by extended_bounds: the same list
        # whether or not anything matched.
        return Histogram(
            interval=interval,
            buckets=[
                Bucket(first + i * interval, counts.get(first + i * interval, 0))
                for i in range(wanted)
            ],
            timed_out=bool(answer.get("timed_out")),
        )

    def top(self, query: Query, field: str, size: int, timeout_s: float = 10.0) -> TopValues:
        if not 1 <= size <= MAX_TOP:
            raise QueryError(f"top values: ask for 1 to {MAX_TOP}, not {size}")
        target = sort_field(field)
        aggs = {
            "top": {
                "terms": {
                    "field": target,
                    "size": size,
                    "order": [{"_count": "desc"}, {"_key": "asc"}],
                }
            },
            "missing": {"missing": {"field": target}},
        }
        body = {"query": compile_query(query), "size": 0, "aggs": aggs}
        answer = self._search(body, timeout_s, "top values")
        result = answer["aggregations"]
        raw = result["top"]["buckets"][:size]
        return TopValues(
            field=field,
            buckets=[Bucket(_key(b), int(b["doc_count"])) for b in raw],
            other=int(result["top"]["sum_other_doc_count"])
            + sum(int(b["doc_count"]) for b in result["top"]["buckets"][size:]),
            missing=int(result["missing"]["doc_count"]),
            timed_out=bool(answer.get("timed_out")),
        )

    def distinct(self, query: Query, field: str, timeout_s: float = 10.0) -> int:
        agg = {"cardinality": {"field": sort_field(field), "precision_threshold": PRECISION}}
        body = {"query": compile_query(query), "size": 0, "aggs": {"d": agg}}
        answer = self._search(body, timeout_s, "a distinct count")
        return int(answer["aggregations"]["d"]["value"])

    # -- context and stats ------------------------------------------------------------------

    def context(self, doc_id: str, before: int, after: int) -> Context | None:
        timeout_s = float(self._config.request_timeout)
        found = self._search(
            {"query": compile_query(Query(Term("id", doc_id))), "size": 1},
            timeout_s,
            "finding a record",
        )["hits"]["hits"]
        if not found:
            return None
        anchor = doc_from_source(found[0]["_source"])
        same_host = compile_query(Query(Term("host", anchor.host)))
        if not anchor.host:
            same_host = {"bool": {"must_not": [{"exists": {"field": "host"}}]}}
        earlier = self._around(same_host, anchor, NEWEST_FIRST, before, timeout_s)
        later = self._around(same_host, anchor, OLDEST_FIRST, after, timeout_s)
        return Context(anchor=anchor, before=earlier[::-1], after=later)

    def _around(
        self,
        where: dict[str, Any],
        anchor: StoredDoc,
        order: list[dict[str, str]],
        size: int,
        timeout_s: float,
    ) -> list[StoredDoc]:
        if size <= 0:
            return []
        body = {
            "query": where,
            "sort": order,
            "size": min(size, PAGE_MAX),
            "search_after": [anchor.time, anchor.id],
        }
        hits = self._search(body, timeout_s, "a context")["hits"]["hits"]
        return [doc_from_source(hit["_source"]) for hit in hits]

    def stats(self) -> StoreStats:
        try:
            return store_stats(self._client, self._config.index_prefix)
        except OpenSearchException as exc:
            raise unavailable(self._config, "reading statistics", exc) from exc

    def close(self) -> None:
        self._client.close()


def exact_total(answer: dict[str, Any]) -> bool:
    """Did the search count every match (not cut short by its deadline)?"""
    relation = answer["hits"]["total"].get("relation", "eq")
    return relation == "eq" and not answer.get("timed_out")


def _key(bucket: dict[str, Any]) -> int | str:
    """A terms bucket's value: the text for keywords, the integer for ``time``."""
    key = bucket["key"]
    return int(key) if isinstance(key, int | float) else str(key)
