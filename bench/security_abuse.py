"""A well-behaved client while the API is abused (issue 15, part of ``bench.security``).

A real node (``logfactory run``, the ``http`` section at its defaults: ``max_connections``
1,024 per listener, ``connection_idle_timeout`` 60 s, the login lock-out) on a fresh data
directory. The well-behaved client sends ``GET /api/v1/stats`` with the admin token, one
request after the other on one keep-alive connection, and counts answers per second: first
unloaded, then while the abuse runs, in child processes:

* **idle connections**: ``--idle`` (2,000) TCP connections to the API port that never send a
  byte. Above the cap the node closes the oldest silent connection to admit a new one, so the
  flood re-opens every connection the node closed, once a second (``SWEEP_S``): a steady
  churn of about (idle - cap) connects a second, each one evicting another idle connection;
* **a login brute force**: ``--brute-threads`` threads POST ``/api/v1/auth/login`` for user
  ``admin`` with wrong passwords, each as fast as answers come, on keep-alive connections,
  ``Retry-After`` ignored (401 while a password is checked, 429 once the lock-out holds).

The well-behaved client connects (and sends its first request) before the abuse starts: a
connection that has sent data is never the one evicted. A client that connects anew for each
request meets the flood at the door (the listen queue, the eviction churn): its rate is
measured too, unloaded and loaded, as a second figure without a target.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import multiprocessing as mp
import resource
import selectors
import socket
import threading
import time
from collections import Counter
from typing import Any

from bench.common import NodeProcess, bearer, percentile

SWEEP_S = 1.0
FLOOD_PROCESSES = 2
CONFIG = """
node: {{name: bench-abuse, data_dir: {data}, timezone: UTC}}
bus: {{type: local, partitions: 4}}
http: {{listen: 127.0.0.1:{http}}}
sources:
  - {{type: http, name: ingest, tag: syslog}}
"""
STATS = "/api/v1/stats"


def _raise_nofile(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, need + 256)), hard))


# -- the abuse (child processes) -------------------------------------------------------------
def _idle_flood(port: int, count: int, stop: Any, ready: Any, held: Any, out: Any) -> None:
    """``count`` silent connections, re-opened once a ``SWEEP_S`` when the node closed them;
    ``held`` is kept at how many are open from this side."""
    _raise_nofile(count)
    sel = selectors.DefaultSelector()
    failed = reopened = closed_by_node = 0

    def open_one() -> bool:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            return False
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        return True

    for _ in range(count):
        failed += not open_one()
    held.value = len(sel.get_map())
    ready.set()
    pending = 0
    next_sweep = time.monotonic() + SWEEP_S
    while not stop.is_set():
        for key, _ in sel.select(0.1):
            conn = key.fileobj
            assert isinstance(conn, socket.socket)
            with contextlib.suppress(BlockingIOError, OSError):
                conn.recv(1)  # EOF or a reset: the node closed it (it never sends anything else)
            sel.unregister(conn)
            conn.close()
            closed_by_node += 1
            pending += 1
        if time.monotonic() >= next_sweep:
            for _ in range(pending):
                if open_one():
                    reopened += 1
                else:
                    failed += 1
            pending = 0
            next_sweep = time.monotonic() + SWEEP_S
        held.value = len(sel.get_map())
    for key in list(sel.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]
    out.put({"closed_by_node": closed_by_node, "reopened": reopened, "connect_failures": failed})


def _brute_force(port: int, threads: int, stop: Any, ready: Any, out: Any) -> None:
    """``threads`` password guessers for ``admin``; the answers by status."""
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def guess(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Content-Type": "application/json"}
        i = 0
        while not stop.is_set():
            body = json.dumps({"user": "admin", "password": f"not-the-password-{k}-{i}"})
            i += 1
            try:
                conn.request("POST", "/api/v1/auth/login", body=body, headers=headers)
                reply = conn.getresponse()
                reply.read()
                status = str(reply.status)
            except (OSError, http.client.HTTPException):
                status = "connection error"
                conn.close()
            with lock:
                counts[status] += 1

    workers = [threading.Thread(target=guess, args=(k,), daemon=True) for k in range(threads)]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    ready.set()
    for w in workers:
        w.join()
    seconds = time.perf_counter() - t0
    out.put({"answers": dict(counts), "seconds": round(seconds, 1),
             "answers_per_s": round(sum(counts.values()) / seconds, 1)})  # fmt: skip


class Abuse:
    """The idle-connection flood and the brute force, started together, stopped together."""

    def __init__(self, port: int, idle: int, brute_threads: int) -> None:
        ctx = mp.get_context("spawn")
        self.stop = ctx.Event()
        self.out = ctx.Queue()
        self.held = [ctx.Value("i", 0) for _ in range(FLOOD_PROCESSES)]
        readies = [ctx.Event() for _ in range(FLOOD_PROCESSES + 1)]
        share = [
            idle // FLOOD_PROCESSES + (i < idle % FLOOD_PROCESSES) for i in range(FLOOD_PROCESSES)
        ]
        self.procs = [
            ctx.Process(
                target=_idle_flood,
                args=(port, share[i], self.stop, readies[i], self.held[i], self.out),
            )
            for i in range(FLOOD_PROCESSES)
        ]
        self.procs.append(
            ctx.Process(
                target=_brute_force, args=(port, brute_threads, self.stop, readies[-1], self.out)
            )
        )
        self.t0 = time.monotonic()
        for p in self.procs:
            p.start()
        for r in readies:
            if not r.wait(120):
                self.close()
                raise RuntimeError("the abuse processes did not start")
        self.ramp_s = round(time.monotonic() - self.t0, 1)

    def held_now(self) -> int:
        return sum(int(h.value) for h in self.held)

    def close(self) -> dict[str, Any]:
        """Stop every process; what they report."""
        self.stop.set()
        reports = []
        for _ in self.procs:
            with contextlib.suppress(Exception):
                reports.append(self.out.get(timeout=60))
        for p in self.procs:
            p.join(30)
            if p.is_alive():
                p.kill()
                p.join()
        flood = [r for r in reports if "reopened" in r]
        brute: dict[str, Any] = next((r for r in reports if "answers" in r), {})
        seconds = time.monotonic() - self.t0
        return {
            "idle": {k: sum(r[k] for r in flood) for k in ("closed_by_node", "reopened",
                                                           "connect_failures")},
            "reconnects_per_s": round(sum(r["reopened"] for r in flood) / seconds, 1),
            "brute_force": brute,
        }  # fmt: skip


# -- the well-behaved clients ----------------------------------------------------------------
class KeepAliveClient(threading.Thread):
    """Sequential ``GET /api/v1/stats`` on one keep-alive connection, connected (and its first
    request answered) before :meth:`start`; every answer time-stamped, so windows can be cut
    from one run."""

    def __init__(self, port: int, token: str) -> None:
        super().__init__(daemon=True)
        self.headers = bearer(token)
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.samples: list[tuple[float, float]] = []  # (monotonic time answered, ms)
        self.failures: list[tuple[float, str]] = []
        self.halt = threading.Event()
        self._one()

    def _one(self) -> None:
        t0 = time.perf_counter()
        try:
            self.conn.request("GET", STATS, headers=self.headers)
            reply = self.conn.getresponse()
            reply.read()
        except (OSError, http.client.HTTPException) as exc:
            self.conn.close()  # the next request connects anew: counted as a failure here
            self.failures.append((time.monotonic(), type(exc).__name__))
            return
        if reply.status == 200:
            self.samples.append((time.monotonic(), (time.perf_counter() - t0) * 1000))
        else:
            self.failures.append((time.monotonic(), str(reply.status)))

    def run(self) -> None:
        while not self.halt.is_set():
            self._one()
        self.conn.close()

    def window(self, start: float, end: float) -> dict[str, Any]:
        ms = sorted(m for t, m in self.samples if start <= t < end)
        failed = Counter(why for t, why in self.failures if start <= t < end)
        return _rate(ms, end - start, dict(failed))


def _rate(ms: list[float], seconds: float, failures: dict[str, int]) -> dict[str, Any]:
    ms = sorted(ms)
    return {
        "seconds": round(seconds, 1),
        "answered_200": len(ms),
        "requests_per_s": round(len(ms) / seconds, 1),
        "p50_ms": round(percentile(ms, 0.5), 2),
        "p99_ms": round(percentile(ms, 0.99), 2),
        "failures": failures,
    }


def fresh_connections(port: int, token: str, seconds: float) -> dict[str, Any]:
    """Sequential ``GET /api/v1/stats``, each on a new connection (what a new user meets)."""
    headers = {**bearer(token), "Connection": "close"}
    ms: list[float] = []
    failures: Counter[str] = Counter()
    t_end = time.monotonic() + seconds
    t_start = time.monotonic()
    while time.monotonic() < t_end:
        t0 = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", STATS, headers=headers)
            reply = conn.getresponse()
            reply.read()
            if reply.status == 200:
                ms.append((time.perf_counter() - t0) * 1000)
            else:
                failures[str(reply.status)] += 1
        except (OSError, http.client.HTTPException) as exc:
            failures[type(exc).__name__] += 1
        finally:
            conn.close()
    return _rate(ms, time.monotonic() - t_start, dict(failures))


def health(port: int) -> int | None:
    """Health's status from a new connection; None when it does not answer in 10 s."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/api/v1/health")
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def api_counters(node: NodeProcess) -> dict[str, int]:
    """The API's counters (connections evicted, refused, timed out; limits reached)."""
    conn = http.client.HTTPConnection("127.0.0.1", node.http, timeout=30)
    try:
        conn.request("GET", STATS, headers=bearer(node.token))
        stats = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    return {str(k): int(v) for k, v in stats.get("other", {}).get("api", {}).items()}


def _held_sampler(abuse: Abuse, stop: threading.Event, out: list[int]) -> None:
    while not stop.wait(0.5):
        out.append(abuse.held_now())


def under_abuse(node: NodeProcess, idle: int, brute_threads: int, seconds: float) -> dict[str, Any]:
    """The measurement on a running node (see the module docstring)."""
    fresh_unloaded = fresh_connections(node.http, node.token, seconds / 2)
    client = KeepAliveClient(node.http, node.token)
    client.start()
    start = time.monotonic()
    time.sleep(seconds)
    unloaded = client.window(start, start + seconds)
    before = api_counters(node)
    abuse = Abuse(node.http, idle, brute_threads)
    held: list[int] = []
    try:
        time.sleep(2.0)  # the churn and the lock-out (if any) in their steady state
        sampling = threading.Event()
        sampler = threading.Thread(target=_held_sampler, args=(abuse, sampling, held))
        sampler.start()
        start = time.monotonic()
        time.sleep(seconds)
        loaded = client.window(start, start + seconds)
        client.halt.set()
        client.join()
        health_during = health(node.http)
        fresh_loaded = fresh_connections(node.http, node.token, seconds)
        sampling.set()
        sampler.join()
    finally:
        client.halt.set()
        report = abuse.close()
    after = api_counters(node)
    return {
        "keep_alive": {
            "unloaded": unloaded,
            "under_abuse": loaded,
            "ratio": round(loaded["requests_per_s"] / unloaded["requests_per_s"], 3),
        },
        "fresh_connection_per_request": {
            "unloaded": fresh_unloaded,
            "under_abuse": fresh_loaded,
            "ratio": round(fresh_loaded["requests_per_s"] / fresh_unloaded["requests_per_s"], 3),
        },
        "idle_connections": {
            "opened": idle,
            "flood_ready_in_s": abuse.ramp_s,
            "held_open_min": min(held, default=0),
            "held_open_max": max(held, default=0),
            **report["idle"],
            "reconnects_per_s": report["reconnects_per_s"],
        },
        "brute_force": {"threads": brute_threads, **report["brute_force"]},
        "node_counters_during_abuse": {
            k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)
        },
        "health_during_abuse": health_during,
        "health_after": health(node.http),
        "node_alive": node.alive(),
    }
