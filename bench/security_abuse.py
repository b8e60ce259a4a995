"""A well-behaved client while the API is abused (issue 15, part of ``bench.security``).

A real node (``logfactory run``, the ``http`` section at its defaults: ``max_connections``
1,024 per listener, ``connection_idle_timeout`` 60 s, the login lock-out) on a fresh data
directory. The well-behaved client sends ``GET /api/v1/stats`` with the admin token, one
request after the other on one keep-alive connection, and counts answers per second: unloaded
(before the abuse and again after it; the ratios are over the mean of the two), and while abuse
runs in child processes:

* **idle connections**: ``--idle`` (2,000) TCP connections to the API port that never send a
  byte. Above the cap the node closes the oldest silent connection to admit a new one, so the
  flood re-opens every connection the node closed, once a second (``SWEEP_S``): a steady
  churn of about (idle - cap) connects a second, each one evicting another idle connection;
* **a login brute force**: ``--brute-threads`` threads POST ``/api/v1/auth/login`` for user
  ``admin`` with wrong passwords, each as fast as answers come, on keep-alive connections,
  ``Retry-After`` ignored (401 while a password is checked, 429 once the lock-out holds).

The abuse processes share the machine's two cores with the node and the client, at the same
priority (a real attacker's CPU is elsewhere: the figure is if anything pessimistic). Each runs
alone for half a window first, to tell their costs apart, then both together for a whole
window: the headline ratio. Per window: the client's rate and latency, the
node's CPU, the machine's busy share, and the connections the node holds on the API port.

The well-behaved client connects (and sends its first request) before the abuse starts: a
connection that has sent data is never the one evicted. A client that connects anew for each
request meets the flood at the door (the listen queue, the eviction churn): its rate is
measured too in every window, while the keep-alive client only keeps its connection, as a
second figure without a target.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import multiprocessing as mp
import os
import resource
import selectors
import socket
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import NodeProcess, bearer, cpu_ticks, machine_ticks, percentile

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
def _idle_flood(port: int, count: int, stop: Any, ready: Any, out: Any) -> None:
    """``count`` silent connections, re-opened once a ``SWEEP_S`` when the node closed them."""
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
    """The idle-connection flood (``idle`` connections over ``FLOOD_PROCESSES`` processes)
    and the brute force (``brute_threads``), either of them 0 for none; started together,
    stopped together."""

    def __init__(self, port: int, idle: int, brute_threads: int) -> None:
        ctx = mp.get_context("spawn")
        self.stop = ctx.Event()
        self.out = ctx.Queue()
        self.procs: list[Any] = []
        readies = []
        if idle:
            for i in range(FLOOD_PROCESSES):
                share = idle // FLOOD_PROCESSES + (i < idle % FLOOD_PROCESSES)
                readies.append(ctx.Event())
                args = (port, share, self.stop, readies[-1], self.out)
                self.procs.append(ctx.Process(target=_idle_flood, args=args))
        if brute_threads:
            readies.append(ctx.Event())
            args = (port, brute_threads, self.stop, readies[-1], self.out)
            self.procs.append(ctx.Process(target=_brute_force, args=args))
        self.t0 = time.monotonic()
        for p in self.procs:
            p.start()
        for r in readies:
            if not r.wait(120):
                self.close()
                raise RuntimeError("the abuse processes did not start")
        self.ready_in_s = round(time.monotonic() - self.t0, 1)

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
        seconds = time.monotonic() - self.t0
        flood = [r for r in reports if "reopened" in r]
        out: dict[str, Any] = {"ready_in_s": self.ready_in_s, "seconds": round(seconds, 1)}
        if flood:
            keys = ("closed_by_node", "reopened", "connect_failures")
            out["idle_flood"] = {k: sum(r[k] for r in flood) for k in keys}
            out["idle_flood"]["reconnects_per_s"] = round(out["idle_flood"]["reopened"] / seconds)
        for r in reports:
            if "answers" in r:
                out["brute_force"] = r
        return out


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
        self.pace = 0.0  # seconds between requests; 0: one after the other
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
            if self.pace:  # keeping its connection (uvicorn closes one idle for 5 s)
                self.halt.wait(self.pace)
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


# -- what a window measured ------------------------------------------------------------------
def held_connections(pid: int, port: int) -> int:
    """TCP connections to ``port`` that process ``pid`` holds (accepted, open): its socket
    descriptors matched with the kernel's table of established connections."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                f = line.split()
                established = f[3] == "01"
                if established and int(f[1].rsplit(":", 1)[1], 16) == port and f[9] in inodes:
                    count += 1
    return count


def measure(node: NodeProcess, client: KeepAliveClient, seconds: float) -> dict[str, Any]:
    """The keep-alive client's answers over the next ``seconds``, with the node's CPU (the API
    process, one core = 100), the machine's busy share and the connections the node holds on
    the API port (sampled twice a second)."""
    tick = os.sysconf("SC_CLK_TCK")
    start = time.monotonic()
    cpu0, (busy0, total0) = cpu_ticks(node.pid), machine_ticks()
    held: list[int] = []
    while time.monotonic() < start + seconds:
        held.append(held_connections(node.pid, node.http))
        time.sleep(max(0.0, min(0.5, start + seconds - time.monotonic())))
    end = time.monotonic()
    cpu1, (busy1, total1) = cpu_ticks(node.pid), machine_ticks()
    return {
        **client.window(start, end),
        "node_cpu_pct_of_one_core": round(100 * (cpu1 - cpu0) / tick / (end - start)),
        "machine_busy_pct": round(100 * (busy1 - busy0) / max(1, total1 - total0)),
        "node_held_connections": {"min": min(held, default=0), "max": max(held, default=0)},
    }


def window(
    node: NodeProcess, client: KeepAliveClient, abuse: tuple[int, int], seconds: float
) -> dict[str, Any]:
    """One window with ``abuse`` (idle connections, brute-force threads) running: the
    keep-alive client for ``seconds``, then (while it only keeps its connection) a client
    connecting anew for each request for as long."""
    running = Abuse(node.http, *abuse) if any(abuse) else None
    out: dict[str, Any] = {}
    try:
        if running is not None:
            time.sleep(1.0)  # the churn (and the lock-out, if any) in their steady state
        out["keep_alive"] = measure(node, client, seconds)
        client.pace = 1.0
        out["fresh_connection_per_request"] = fresh_connections(node.http, node.token, seconds)
        out["health_status"] = health(node.http)
        client.pace = 0.0
    finally:
        if running is not None:
            out["abuse"] = running.close()
    return out


def _ratio(windows: dict[str, Any], name: str, client: str) -> float:
    """The rate in window ``name`` over the unloaded rate: the mean of the unloaded windows
    before and after the abuse, so a drift of the machine over the run (a previous benchmark's
    writes still going to disk, another tenant) does not count as the abuse's cost."""
    unloaded = [float(windows[w][client]["requests_per_s"]) for w in UNLOADED]
    base = sum(unloaded) / len(unloaded)
    return round(float(windows[name][client]["requests_per_s"]) / base, 3)


#: the windows without abuse, before and after it
UNLOADED = ("unloaded", "unloaded_after")


def under_abuse(node: NodeProcess, idle: int, brute_threads: int, seconds: float) -> dict[str, Any]:
    """The measurement on a running node (see the module docstring). Each abuse alone runs for
    half a window first, to tell their costs apart; then both together (the headline)."""
    client = KeepAliveClient(node.http, node.token)
    client.start()
    windows: dict[str, Any] = {}
    try:
        before = api_counters(node)
        for name, abuse, length in (
            ("unloaded", (0, 0), seconds),
            ("idle_flood_alone", (idle, 0), seconds / 2),
            ("brute_force_alone", (0, brute_threads), seconds / 2),
            ("under_abuse", (idle, brute_threads), seconds),
            ("unloaded_after", (0, 0), seconds),
        ):
            windows[name] = window(node, client, abuse, length)
            print(json.dumps({name: windows[name]}), flush=True)
    finally:
        client.halt.set()
        client.join()
    after = api_counters(node)
    return {
        "idle_connections": idle,
        "brute_force_threads": brute_threads,
        "ratio": _ratio(windows, "under_abuse", "keep_alive"),
        "ratio_idle_flood_alone": _ratio(windows, "idle_flood_alone", "keep_alive"),
        "ratio_brute_force_alone": _ratio(windows, "brute_force_alone", "keep_alive"),
        "ratio_fresh_connection_per_request": _ratio(
            windows, "under_abuse", "fresh_connection_per_request"
        ),
        "unloaded_drift": round(
            windows["unloaded_after"]["keep_alive"]["requests_per_s"]
            / windows["unloaded"]["keep_alive"]["requests_per_s"],
            3,
        ),
        "windows": windows,
        "node_counters_during_abuse": {
            k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)
        },
        "health_after": health(node.http),
        "node_alive": node.alive(),
    }
