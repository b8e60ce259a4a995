"""The node's HTTP API: health, stats, Prometheus metrics, HTTP ingest and SSE subscriptions.

It runs inside the node process's asyncio loop (under uvicorn), next to the collectors, so it
must never block that loop: every bus or file access runs in a worker thread. Ingest lives in
:mod:`.api_ingest`, subscriptions and topic tails in :mod:`.api_sse`, the API's own documentation
pages (``/``, ``/docs``, ``/redoc``, served without a CDN) in :mod:`.api_docs`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from logfactory.bus.base import Bus, Producer
from logfactory.centre.metrics import (
    NodeCollector,
    ProcessInfo,
    StatsView,
    bus_overview,
    merge_snapshots,
    read_snapshots,
)
from logfactory.config import Config
from logfactory.stats import WARNING_PREFIX, StatsRegistry

__all__ = ["ApiState", "NodeContext", "create_app", "process_problems"]

log = logging.getLogger(__name__)

BUS_CHECK_TIMEOUT_S = 3.0


@dataclass
class NodeContext:
    """What the API needs from the node that hosts it.

    ``expected_processes`` names roles (``"factory"`` matches ``factory-1234``) of which at
    least one live process must report for the node to be healthy; processes that reported
    at all are always checked. ``keepalive_s`` is the SSE comment interval.
    """

    config: Config
    bus: Bus
    producer: Producer
    registry: StatsRegistry
    stats_dir: Path
    started: float
    expected_processes: tuple[str, ...] = ()
    stale_after_s: float = 5.0
    keepalive_s: float = 15.0


class ApiState:
    """Live numbers of the API itself, mirrored into the process's stats registry."""

    def __init__(self, registry: StatsRegistry) -> None:
        self._registry = registry
        self._lock = threading.Lock()
        self.subscribers = 0

    def subscriber_delta(self, n: int) -> None:
        with self._lock:
            self.subscribers += n
            self._registry.gauge("api.subscribers", self.subscribers)


_PID_SUFFIX = re.compile(r"-\d+$")


def _role(name: str) -> str:
    """``factory-1234`` -> ``factory``: processes of one role replace each other on restart."""
    return _PID_SUFFIX.sub("", name)


def process_problems(
    processes: list[ProcessInfo],
    *,
    own: str,
    expected: tuple[str, ...] = (),
    stale_after_s: float = 5.0,
) -> list[str]:
    """Human-readable reasons why the node's processes are not all healthy ([] if they are).

    A dead or silent process is forgiven when a process of the same role started after its
    last report: that is a restart (the supervisor replaced it), not an outage. A live process
    may report problems of its own (the bus unreachable, a collector spooling to disk): those
    are listed as ``"<process>: <text>"``.
    """
    ok = [p for p in processes if p.name == own or (p.alive and p.age_s < stale_after_s)]
    ok_names = {p.name for p in ok}
    problems: list[str] = []
    for proc in processes:
        if proc.name in ok_names:
            continue
        role = _role(proc.name)
        if any(_role(o.name) == role and o.started >= proc.written - 1.0 for o in ok):
            continue
        if not proc.alive:
            problems.append(
                f"process {proc.name} (pid {proc.pid}) is not running; "
                f"its last report was {proc.age_s:.1f} s ago"
            )
        else:
            problems.append(
                f"process {proc.name} (pid {proc.pid}) has not reported for {proc.age_s:.1f} s "
                f"(limit {stale_after_s:g} s); it may be stuck"
            )
    for proc in processes:
        if proc.name in ok_names:  # a dead process's last words are stale; see above
            problems.extend(
                f"{proc.name}: {text}"
                for name, text in sorted(proc.problems.items())
                if not name.startswith(WARNING_PREFIX)
            )
    for role in expected:
        if not any(_role(p.name) == role for p in processes):
            problems.append(f"no {role} process has reported stats; is it started?")
    return problems


def create_app(ctx: NodeContext) -> FastAPI:
    """The API for one node; routes are listed in docs/http-api.md."""
    from logfactory.centre.api_docs import add_docs_routes
    from logfactory.centre.api_ingest import add_ingest_routes
    from logfactory.centre.api_patterns import add_pattern_routes
    from logfactory.centre.api_sse import add_sse_routes

    app = FastAPI(
        title="logfactory",
        summary="Raw logs in, typed events out: ingest, stats, metrics and event subscriptions.",
        docs_url=None,  # /docs and /redoc come from api_docs, served without a CDN
        redoc_url=None,
    )
    state = ApiState(ctx.registry)
    app.state.api = state

    def stats_view() -> StatsView:
        return merge_snapshots(read_snapshots(ctx.stats_dir, ctx.registry))

    def safe_bus_overview() -> dict[str, Any] | None:
        try:
            return bus_overview(ctx.bus)
        except Exception:
            log.exception("bus overview failed")
            return None

    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(stats_view, safe_bus_overview, ctx.started, ctx.stale_after_s))

    @app.get(
        "/api/v1/health",
        responses={503: {"description": "unhealthy: `problems` says what (bus, a process)"}},
    )
    async def health() -> JSONResponse:
        """200 when the bus answers and every process reports; 503 with the problems if not.
        ``warnings`` (either way) lists what is worth knowing but leaves the node healthy."""
        problems: list[str] = []
        loop = asyncio.get_running_loop()
        try:
            # a plain executor future, unlike anyio's, stops being awaited at the timeout
            await asyncio.wait_for(
                loop.run_in_executor(None, ctx.bus.topics), timeout=BUS_CHECK_TIMEOUT_S
            )
        except TimeoutError:
            problems.append(f"bus: no answer within {BUS_CHECK_TIMEOUT_S:g} s")
        except Exception as exc:
            problems.append(f"bus: {type(exc).__name__}: {exc}")
        view = await run_in_threadpool(stats_view)
        problems += process_problems(
            view.processes,
            own=ctx.registry.process,
            expected=ctx.expected_processes,
            stale_after_s=ctx.stale_after_s,
        )
        body: dict[str, Any] = {
            "status": "degraded" if problems else "ok",
            "node": ctx.config.node.name,
            "uptime_s": round(time.time() - ctx.started, 3),
            "processes": [_process_json(p) for p in view.processes],
        }
        if problems:
            body["problems"] = problems
        warnings = [
            f"{p.name}: {text}"
            for p in view.processes
            if p.alive
            for name, text in sorted(p.problems.items())
            if name.startswith(WARNING_PREFIX)
        ]
        if warnings:
            body["warnings"] = warnings
        return JSONResponse(body, status_code=503 if problems else 200)

    @app.get("/api/v1/stats")
    def stats() -> dict[str, Any]:
        """Counters summed over processes, bus depth and lag, and the processes themselves."""
        view = stats_view()
        overview = safe_bus_overview()
        return {
            "node": ctx.config.node.name,
            "time": time.time(),
            "uptime_s": round(time.time() - ctx.started, 3),
            "stages": view.stages,
            "sources": view.sources,
            "events": view.events,
            "deadletter": view.deadletter,
            "other": view.other,
            "gauges": view.gauges,
            "bus": overview if overview is not None else {"error": "the bus did not answer"},
            "processes": [_process_json(p) for p in view.processes],
            "api": {"subscribers": state.subscribers},
        }

    @app.get("/metrics")
    def metrics() -> Response:
        """Prometheus text exposition of the same numbers as /api/v1/stats."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    add_ingest_routes(app, ctx)
    add_sse_routes(app, ctx, state)
    add_pattern_routes(app, ctx)
    add_docs_routes(app, node_name=ctx.config.node.name)
    return app


def _process_json(proc: ProcessInfo) -> dict[str, Any]:
    out = asdict(proc)
    out.pop("written")
    return out
