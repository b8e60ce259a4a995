"""``GET /api/v1/stats`` and ``GET /metrics``: the node's numbers, as JSON and for Prometheus.

Both show the same numbers (see :mod:`logfactory.api.metrics`): counters summed over the
node's processes, the bus's depth and lag, the processes themselves. Prometheus's are computed
at scrape time by a collector of their own registry, not kept twice.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from logfactory.access import Role
from logfactory.api.context import ApiState, NodeContext
from logfactory.api.metrics import (
    NodeCollector,
    StatsView,
    node_stats,
    process_json,
    safe_bus_overview,
)

__all__ = ["router"]


def router(ctx: NodeContext, state: ApiState) -> APIRouter:
    """The stats and metrics routes of the node ``ctx`` describes."""
    api = APIRouter()

    def stats_view() -> StatsView:
        return node_stats(ctx.stats_dir, ctx.registry)

    def bus_view() -> dict[str, Any] | None:
        return safe_bus_overview(ctx.bus)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(stats_view, bus_view, ctx.started, ctx.stale_after_s))

    viewer = [Depends(state.auth.requires(Role.VIEWER))]

    @api.get("/api/v1/stats", dependencies=viewer)
    def stats() -> dict[str, Any]:
        """Counters summed over processes, bus depth and lag, and the processes themselves."""
        view = stats_view()
        overview = bus_view()
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
            "processes": [process_json(p) for p in view.processes],
            "api": {"subscribers": state.subscribers},
        }

    @api.get("/metrics", dependencies=viewer)
    def metrics() -> Response:
        """Prometheus text exposition of the same numbers as /api/v1/stats."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return api
