"""Query latency on the kept store: the issue's seven queries, 20 warm runs each.

Every query goes through the real path below the API: the query text through
:func:`~logfactory.store.query.parser.parse_query` (as ``/api/v1/search`` does), then the
:class:`~logfactory.store.engines.embedded.EmbeddedReader` of the kept store, opened once in
this process. Each is run twice unmeasured first (warm: the operating system's page cache and
the reader's caches hold what it reads), then :data:`RUNS` times; p50 and p95 are over those.
The first, unmeasured run is reported too (``first_ms``): what a query costs the first time it
is asked after the reader opened.

What the queries look for comes from the data (:func:`bench.store_build._picks`): the rare
word is a job id (a job's few lines and events), the context anchor a log of the middle day.
Searches ask for one page of :data:`PAGE` hits, newest first, with the total counted.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import percentile
from logfactory.store.engines.embedded import EmbeddedReader
from logfactory.store.query.intervals import auto_interval
from logfactory.store.query.parser import parse_query
from logfactory.store.query.tree import Query

__all__ = ["PAGE", "RUNS", "TARGETS_MS", "latencies"]

RUNS = 20
WARMUP = 2
PAGE = 100
CONTEXT_LINES = 10
DAY_NS = 86_400 * 1_000_000_000
TARGETS_MS = {"search": 200.0, "aggregation": 100.0}


def _timed(call: Callable[[], Any], runs: int) -> tuple[list[float], Any]:
    out: list[float] = []
    result: Any = None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = call()
        out.append((time.perf_counter() - t0) * 1000)
    return out, result


def _query(text: str, start: int, end: int) -> Query:
    query = parse_query(text, now_ns=end)
    return Query(where=query.where, start=start, end=end, text=text)


Case = tuple[str, str, Callable[[], Any]]
"""(name, kind of target, call)."""


def _cases(
    reader: EmbeddedReader, manifest: dict[str, Any]
) -> list[tuple[str, str, Callable[[], Any]]]:
    """(name, kind of target, call): what each query runs."""
    window = manifest["window"]
    start, end = int(window["start_ns"]), int(window["end_ns"])
    picks = manifest["picks"]
    day = (end - DAY_NS, end)
    texts = {
        "rare_word": picks["rare_word"],
        "common_word": "session",
        "phrase": '"session opened"',
        "host_and_severity": f"host:{picks['host']} AND severity:error",
    }
    cases: list[Case] = []
    for name, text in texts.items():
        query = _query(text, start, end)
        cases.append((name, "search", functools.partial(reader.search, query, PAGE)))
    anchor = picks["context_id"]
    cases.append(
        ("context", "search", lambda: reader.context(anchor, CONTEXT_LINES, CONTEXT_LINES))
    )
    everything = _query("", *day)
    interval = auto_interval(*day)
    cases.append(("histogram_24h", "aggregation", lambda: reader.histogram(everything, interval)))
    week = _query("", start, end)
    cases.append(("top10_hosts_7d", "aggregation", lambda: reader.top(week, "host", 10)))
    return cases


def _what(name: str, result: Any) -> dict[str, Any]:
    """What a query's answer held, so a reader of the figures knows what was measured."""
    if name == "context":
        return {"before": len(result.before), "after": len(result.after)}
    if name == "histogram_24h":
        return {"buckets": len(result.buckets), "docs": sum(b.count for b in result.buckets)}
    if name == "top10_hosts_7d":
        return {"values": len(result.buckets), "top": [str(b.key) for b in result.buckets[:3]]}
    return {"hits": len(result.hits), "total": result.total}


def latencies(store: Path, manifest: dict[str, Any], runs: int = RUNS) -> dict[str, Any]:
    """Each query's p50/p95 (ms) over ``runs`` warm runs, against its target."""
    reader = EmbeddedReader(store)
    out: dict[str, Any] = {}
    try:
        for name, kind, call in _cases(reader, manifest):
            first, _ = _timed(call, 1)
            _timed(call, WARMUP - 1)
            times, result = _timed(call, runs)
            times.sort()
            target = TARGETS_MS[kind]
            p95 = percentile(times, 0.95)
            out[name] = {
                "p50_ms": round(percentile(times, 0.50), 2),
                "p95_ms": round(p95, 2),
                "max_ms": round(times[-1], 2),
                "first_ms": round(first[0], 2),
                "runs": runs,
                "target_p95_ms": target,
                "meets_target": p95 <= target,
                "answer": _what(name, result),
                "load_avg": [round(x, 2) for x in os.getloadavg()],
            }
            print(f"store bench: {name} {out[name]}", flush=True)
    finally:
        reader.close()
    return out
