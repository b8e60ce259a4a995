"""``GET /api/v1/health``: is the node well? The bus must answer and every process report.

It is what a supervisor or a load balancer polls, so it stays cheap and never blocks the loop:
the bus is asked in a worker thread, with a deadline, and the processes' stats files are read
in another.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from logfactory.api.context import ApiState, NodeContext
from logfactory.api.metrics import ProcessInfo, node_stats, process_json
from logfactory.stats import WARNING_PREFIX

__all__ = ["BUS_CHECK_TIMEOUT_S", "process_problems", "router"]

BUS_CHECK_TIMEOUT_S = 3.0

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


def router(ctx: NodeContext, state: ApiState) -> APIRouter:
    """The health route of the node ``ctx`` describes."""
    api = APIRouter()

    @api.get(
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
        view = await run_in_threadpool(node_stats, ctx.stats_dir, ctx.registry)
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
            "processes": [process_json(p) for p in view.processes],
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

    return api
