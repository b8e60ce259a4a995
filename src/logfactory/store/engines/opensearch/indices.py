"""The store's daily indices as the cluster reports them (``_cat/indices``): for retention and
statistics. Names that do not end in a day (``PREFIX-logs-YYYY.MM.DD``) are not the store's
and are never touched."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opensearchpy import OpenSearch

from logfactory.store.engine import StoreStats
from logfactory.store.engines.opensearch.mapping import KINDS, day_start_ns, index_patterns

__all__ = ["DailyIndex", "list_daily_indices", "store_stats"]


@dataclass(frozen=True, slots=True)
class DailyIndex:
    name: str
    day: int  # the day's start, UTC ns
    docs: int
    bytes: int


def list_daily_indices(client: OpenSearch, prefix: str) -> list[DailyIndex]:
    """The store's indices, oldest day first (raises the client's errors)."""
    patterns = ",".join(f"{prefix}-{kind}-*" for kind in KINDS)
    rows: list[dict[str, Any]] = client.cat.indices(
        index=patterns, format="json", bytes="b", params={"expand_wildcards": "open"}
    )
    found: list[DailyIndex] = []
    for row in rows:
        name = str(row.get("index", ""))
        for kind in KINDS:
            head = f"{prefix}-{kind}-"
            if not name.startswith(head):
                continue
            day = day_start_ns(name[len(head) :])
            if day is not None:
                found.append(
                    DailyIndex(
                        name, day, int(row.get("docs.count") or 0), int(row.get("store.size") or 0)
                    )
                )
    found.sort(key=lambda index: (index.day, index.name))
    return found


def store_stats(client: OpenSearch, prefix: str) -> StoreStats:
    """Documents, bytes and daily indices, with the oldest and newest ``time`` held."""
    indices = list_daily_indices(client, prefix)
    if not indices:
        return StoreStats(docs=0, bytes=0, partitions=0, oldest=None, newest=None)
    where = ",".join(index_patterns(prefix))
    ends: list[int | None] = []
    total = 0
    for order in ("asc", "desc"):
        # A sorted hit, not a min/max aggregation: those answer in doubles, which round
        # nanoseconds since 1970 by up to 128 ns.
        answer = client.search(
            index=where,
            body={
                "size": 1,
                "track_total_hits": True,
                "sort": [{"time": order}],
                "_source": ["time"],
            },
            params={"ignore_unavailable": "true", "allow_no_indices": "true"},
        )
        hits = answer["hits"]["hits"]
        ends.append(int(hits[0]["_source"]["time"]) if hits else None)
        total = int(answer["hits"]["total"]["value"])
    return StoreStats(
        docs=total,
        bytes=sum(index.bytes for index in indices),
        partitions=len({index.day for index in indices}),
        oldest=ends[0],
        newest=ends[1],
    )
