"""What authentication costs a request (issue 15, part of ``bench.security``).

A real node (``logfactory run``) answers sequential keep-alive requests on the ingest path
(``POST /api/v1/ingest``, 10 lines) and the search path (``GET
/api/v1/topics/logs.parsed/tail?count=20`` and ``GET /api/v1/patterns?limit=50``: there is no
search route before issue 16; these are the reads a console makes today), each with the
credentials a client of that path uses: an API token or an http source's token for ingest, an
API token or a console login's cookie for reads. Its request times are one side of the ratio.

The other side is the check itself, timed in this process in the same run: the dependency a
route declares (``Authenticator.requires(role)``: FastAPI's bearer and cookie extractors, then
``Authenticator.identify``, then the role check) called on a request carrying each kind of
credential, against a copy of the node's ``access.db`` (its tokens and the session the login
made), ``Authenticator.identify`` alone reported beside it. The ratio is the dependency's p50
over the request's p50 (target <= 0.05).

The A/B, a second figure: the same app (``create_app``) twice in a child process under uvicorn,
over the node's bus, once as built and once with every role dependency overridden by one that
returns an admin at once; the same requests alternate between the two in blocks. The share is
(p50 with - p50 without) / p50 with; it includes what the real dependency costs FastAPI to
solve, and is noisy at the scale of a few microseconds (it can come out below zero).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import multiprocessing as mp
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import closing
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

from starlette.requests import Request

from bench.common import NodeProcess, bearer, percentile, wait_port

SOURCE_TOKEN = "bench-edge-source-token-0123456789"
# the query rate limit (per credential) is lifted: sequential reads are what is timed here
CONFIG = """
node: {{name: bench-auth, data_dir: {data}, timezone: UTC}}
bus: {{type: local, partitions: 4}}
http: {{listen: 127.0.0.1:{http}, query_rate: 1000000, query_burst: 1000000}}
sources:
  - {{type: http, name: ingest, tag: syslog}}
  - {{type: http, name: edge, tag: syslog, token: SOURCE_TOKEN}}
workshops:
  syslog: {{format: syslog}}
""".replace("SOURCE_TOKEN", SOURCE_TOKEN)
INGEST_BODY = b"".join(
    b"<13>Dec  1 00:00:00 cn%02d sshd[4%03d]: Accepted publickey for usr%d from 10.1.0.%d\n"
    % (i % 8, i, i % 13, i)
    for i in range(10)
)
PATHS: dict[str, tuple[str, str, bytes | None]] = {
    "ingest": ("POST", "/api/v1/ingest", INGEST_BODY),
    "tail": ("GET", "/api/v1/topics/logs.parsed/tail?count=20", None),
    "patterns": ("GET", "/api/v1/patterns?limit=50", None),
}
WARMUP = 50
AUTH_CALLS = 5000


# -- requests over HTTP --------------------------------------------------------------------
def timed_requests(
    port: int, path: str, headers: dict[str, str], n: int, warmup: int = WARMUP
) -> list[float]:
    """Round trips (ms) of ``n`` sequential ``path`` requests on one keep-alive connection,
    after ``warmup`` untimed ones; anything but 200 stops the benchmark."""
    method, url, body = PATHS[path]
    if body is not None:
        headers = {**headers, "Content-Type": "text/plain"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    out: list[float] = []
    try:
        for i in range(warmup + n):
            t0 = time.perf_counter()
            conn.request(method, url, body=body, headers=headers)
            reply = conn.getresponse()
            data = reply.read()
            elapsed = (time.perf_counter() - t0) * 1000
            if reply.status != 200:
                raise RuntimeError(f"{method} {url} answered {reply.status}: {data[:300]!r}")
            if i >= warmup:
                out.append(elapsed)
    finally:
        conn.close()
    return out


def interleaved(
    path: str, clients: dict[str, tuple[int, dict[str, str]]], n: int, blocks: int = 10
) -> dict[str, dict[str, float]]:
    """``n`` requests on ``path`` per client (label: port, headers), the clients taking turns
    in ``blocks`` blocks, so that a busier moment of the machine falls on all of them."""
    times: dict[str, list[float]] = {label: [] for label in clients}
    for block in range(blocks):
        for label, (port, headers) in clients.items():
            warmup = WARMUP if block == 0 else 5
            times[label] += timed_requests(port, path, headers, n // blocks, warmup=warmup)
    return {label: summary_ms(values) for label, values in times.items()}


def summary_ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "requests": len(values),
        "p50_ms": round(percentile(ordered, 0.5), 3),
        "p99_ms": round(percentile(ordered, 0.99), 3),
        "mean_ms": round(sum(values) / max(1, len(values)), 3),
    }


def _get_json(port: int, url: str, headers: dict[str, str]) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", url, headers=headers)
        reply = conn.getresponse()
        return json.loads(reply.read()) if reply.status == 200 else None
    finally:
        conn.close()


def prepare(node: NodeProcess, deadline_s: float = 60.0) -> None:
    """Data for the reads: ingest until ``logs.parsed`` holds 20 messages and the library a
    template (the factory works behind the node's answer)."""
    headers = bearer(node.token)
    timed_requests(node.http, "ingest", headers, 20, warmup=0)
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        tail = _get_json(node.http, PATHS["tail"][1], headers)
        library = _get_json(node.http, PATHS["patterns"][1], headers)
        if tail and len(tail) >= 20 and library:
            return
        time.sleep(0.2)
    raise RuntimeError("the factory produced no logs.parsed messages or templates in time")


def login(port: int, password: str) -> str:
    """A console login of ``admin``: the session cookie's value."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        body = json.dumps({"user": "admin", "password": password})
        conn.request(
            "POST", "/api/v1/auth/login", body=body, headers={"Content-Type": "application/json"}
        )
        reply = conn.getresponse()
        reply.read()
        if reply.status != 200:
            raise RuntimeError(f"login answered {reply.status}")
        jar: SimpleCookie = SimpleCookie()
        for header in reply.headers.get_all("Set-Cookie") or []:
            jar.load(header)
    finally:
        conn.close()
    from logfactory.api.auth import SESSION_COOKIE

    return jar[SESSION_COOKIE].value


# -- the check in this process ---------------------------------------------------------------
def copy_store(data: Path, into: Path) -> Path:
    """A consistent copy of the node's ``access.db`` (SQLite's backup: WAL included)."""
    from logfactory.access.store import ACCESS_DB

    with (
        closing(sqlite3.connect(f"file:{data / ACCESS_DB}?mode=ro", uri=True)) as src,
        closing(sqlite3.connect(into)) as dst,
    ):
        src.backup(dst)
    return into


def _request(headers: dict[str, str], method: str) -> Request:
    scope = {
        "type": "http", "method": method, "path": "/", "raw_path": b"/", "query_string": b"",
        "root_path": "", "scheme": "http", "http_version": "1.1",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8080),
    }  # fmt: skip
    return Request(scope)


async def _time_calls(
    call: Callable[..., Awaitable[Any]], calls: list[tuple[Any, ...]]
) -> list[float]:
    """Microseconds of ``call(*args)`` for each of ``calls`` but the first ``WARMUP``."""
    out: list[float] = []
    for i, args in enumerate(calls):
        t0 = time.perf_counter_ns()
        await call(*args)
        if i >= WARMUP:
            out.append((time.perf_counter_ns() - t0) / 1000)
    return out


def _stats_us(prefix: str, values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        f"{prefix}_p50_us": round(percentile(ordered, 0.5), 1),
        f"{prefix}_p99_us": round(percentile(ordered, 0.99), 1),
        f"{prefix}_mean_us": round(sum(values) / max(1, len(values)), 1),
    }


def auth_times(
    store_path: Path, cfg: Path, credentials: dict[str, dict[str, str]], n: int
) -> dict[str, dict[str, float]]:
    """Per credential kind: the route dependency's and ``identify``'s time per request (µs)."""
    from fastapi.security import APIKeyCookie, HTTPBearer

    from logfactory.access import Role
    from logfactory.access.store import AccessStore
    from logfactory.api.auth import SESSION_COOKIE, Authenticator
    from logfactory.config import load_config

    store = AccessStore(store_path)
    auth = Authenticator(store, load_config(cfg))
    # as logfactory.api.auth declares them for every route
    bearer_of = HTTPBearer(auto_error=False)
    cookie_of = APIKeyCookie(name=SESSION_COOKIE, auto_error=False)

    async def run() -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for kind, headers in credentials.items():
            ingest = kind == "source_token"
            dependency = auth.requires(Role.INGEST if ingest else Role.VIEWER)
            method = "POST" if ingest else "GET"

            async def whole(request: Any, dependency: Any = dependency) -> Any:
                creds, sid = await bearer_of(request), await cookie_of(request)
                return await dependency(request, creds, sid)

            fresh = [(_request(headers, method),) for _ in range(n + WARMUP)]
            dep = await _time_calls(whole, fresh)
            extracted = []
            for _ in range(n + WARMUP):
                request = _request(headers, method)
                extracted.append((request, await bearer_of(request), await cookie_of(request)))
            ident = await _time_calls(auth.identify, extracted)
            out[kind] = {"calls": n, **_stats_us("dependency", dep), **_stats_us("identify", ident)}
        return out

    try:
        return asyncio.run(run())
    finally:
        store.close()


# -- the A/B: the same app with and without the check ----------------------------------------
def open_every_route(app: Any) -> int:
    """Override every role dependency of ``app`` with one that lets an admin through at once;
    how many were overridden."""
    from fastapi.routing import APIRoute

    from logfactory.access import Principal, Role
    from logfactory.api.auth import required_role

    anyone = Principal("token", "token:bench", "bench", Role.ADMIN)

    async def let_through(request: Request) -> Principal:
        request.state.principal = anyone
        return anyone

    def walk(dependant: Any) -> None:
        for dep in dependant.dependencies:
            if dep.call is not None and required_role(dep.call) is not None:
                app.dependency_overrides[dep.call] = let_through
            walk(dep)

    def routes(of: list[Any]) -> None:
        for route in of:
            if isinstance(route, APIRoute):
                walk(route.dependant)
            elif hasattr(route, "original_router"):  # FastAPI >= 0.165 includes routers lazily
                routes(route.original_router.routes)

    routes(app.routes)
    return len(app.dependency_overrides)


def _ab_servers(
    cfg: str, store: str, stats_dir: str, ports: tuple[int, int], stop: Any, out: Any
) -> None:
    """A child process: the node's app as built on ``ports[0]`` and with its checks
    overridden on ``ports[1]``, over the node's bus (a producer of its own), until ``stop``."""
    import uvicorn

    from logfactory.access.store import AccessStore
    from logfactory.api import NodeContext, create_app
    from logfactory.bus import open_bus
    from logfactory.config import load_config
    from logfactory.stats import StatsRegistry

    config = load_config(Path(cfg))
    bus = open_bus(config, create=False)
    ctx = NodeContext(
        config=config, bus=bus, producer=bus.producer(), registry=StatsRegistry("bench"),
        stats_dir=Path(stats_dir), started=time.time(), access=AccessStore(Path(store)),
    )  # fmt: skip
    checked, unchecked = create_app(ctx), create_app(ctx)
    out.put(open_every_route(unchecked))

    async def serve() -> None:
        servers = []
        for app, port in zip((checked, unchecked), ports, strict=True):
            config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
            config.access_log, config.lifespan = False, "off"
            servers.append(uvicorn.Server(config))
        tasks = [asyncio.create_task(s.serve()) for s in servers]
        while not stop.is_set():
            await asyncio.sleep(0.1)
        for s in servers:
            s.should_exit = True
        await asyncio.gather(*tasks)

    try:
        asyncio.run(serve())
    finally:
        ctx.producer.close()
        bus.close()


def _status(port: int, url: str, headers: dict[str, str]) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", url, headers=headers)
        reply = conn.getresponse()
        reply.read()
        return reply.status
    finally:
        conn.close()


def ab(node: NodeProcess, store: Path, n: int, blocks: int = 10) -> dict[str, Any]:
    """The A/B (module docstring): per path, ``n`` requests to each app, alternating in
    ``blocks`` blocks, all with the API token."""
    from bench.common import free_port

    ctx = mp.get_context("spawn")
    stop, out = ctx.Event(), ctx.Queue()
    ports = (free_port(), free_port())
    with tempfile.TemporaryDirectory() as stats_dir:
        args = (str(node.cfg), str(store), stats_dir, ports, stop, out)
        proc = ctx.Process(target=_ab_servers, args=args)
        proc.start()
        try:
            overridden = out.get(timeout=120)
            for port in ports:
                wait_port(port)
            # the override really lets requests through, and the checked app really checks
            statuses = {
                "checked_without_credential": _status(ports[0], "/api/v1/stats", {}),
                "unchecked_without_credential": _status(ports[1], "/api/v1/stats", {}),
            }
            headers = bearer(node.token)
            result: dict[str, Any] = {"dependencies_overridden": overridden, **statuses}
            for path in PATHS:
                clients = {"with_auth": (ports[0], headers), "auth_overridden": (ports[1], headers)}
                both = interleaved(path, clients, n)
                a, b = both["with_auth"], both["auth_overridden"]
                share = round((a["p50_ms"] - b["p50_ms"]) / a["p50_ms"], 4)
                result[path] = {**both, "share_of_request_p50": share}
        finally:
            stop.set()
            proc.join(30)
            if proc.is_alive():
                proc.kill()
                proc.join()
    return result
