"""Resilience benchmark (issue 13): what hostile load costs a running node.

A real node (``logfactory run``, local bus, HTTP API, a syslog TCP source) on a fresh data
directory whose ``events.ALERT`` already holds a backlog of ``--backlog`` events:

* **SSE subscribers**: the node's RSS (``VmRSS`` of its process, the factory child excluded)
  with no subscriber, with 64 and with a burst of ``--burst`` connects (the API admits its cap
  and refuses the rest), each subscriber reading ``from=earliest`` as fast as it can. The
  figure per subscriber is (peak RSS while they read - RSS before) / admitted; "after" is the
  RSS once every stream has ended. Clients are raw sockets in a child process that read and
  discard, so they cost the machine little.
* **ingest p99**: the round trip of a small ``POST /api/v1/ingest`` (10 lines, one request at a
  time, about 50 a second), without subscribers and while they read.
* **idle connections**: ``--idle`` connections opened to the syslog TCP port and left silent:
  how many the node still holds after a while, whether a new sender's line still reaches the
  bus, whether the node is alive. (The per-listener cap and idle timeout of issue 13 item 1 are
  read from the configuration when the node has them: ``IDLE_KEYS`` below.)
* **decompression**: :func:`logfactory.api.ingest_body.decompress` of the worst 16 MiB body
  of each encoding - many tiny empty members or frames - in a child process with a deadline.

Every request but health carries the node's admin token (``admin-credentials.json``, issue 15);
the SSE clients all use that one token, so the per-credential stream cap is lifted like the
per-address one: the caps measured are the node's totals.

Targets (reported, not asserted): memory per subscriber <= 2 MB, ingest p99 with subscribers at
the cap within 20% of the p99 without, every 16 MiB worst case decompressed (or refused) in <= 1 s.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import http.client
import json
import multiprocessing as mp
import os
import resource
import selectors
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import (
    admin_token,
    bearer,
    free_port,
    percentile,
    stop_node,
    wait_healthy,
    wait_port,
    write_result,
)

BACKLOG = 100_000
BURST = 200
FULL_READERS = 4  # subscribers that read the whole backlog
READ_S = 15.0  # how long subscribers read while memory and ingest are measured
PROBE_RATE = 50  # ingest requests per second (one at a time)
WORST_BODY = 16 * 1024 * 1024
DECOMPRESS_DEADLINE_S = 20.0
TARGETS = {
    "memory_per_subscriber_mb": 2.0,
    "ingest_p99_with_subscribers_vs_without": 1.2,
    "decompress_worst_16mib_s": 1.0,
}

CONFIG = """
node: {{name: bench, data_dir: {data}, timezone: UTC}}
bus: {{type: local, partitions: 4}}
http: {{listen: 127.0.0.1:{http}{http_extra}}}
sources:
  - {{type: syslog, name: sys-tcp, tag: syslog, listen: 127.0.0.1:{port}, protocols: [tcp]
     {source_extra}}}
  - {{type: http, name: ingest, tag: syslog}}
"""


# -- the node --------------------------------------------------------------------------------
def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Node:
    """``logfactory run`` on a fresh data directory in ``tmp``."""

    def __init__(self, tmp: Path, source: str = "", http: str = "") -> None:
        from logfactory.config import HttpConfig

        self.http, self.port = free_port(), free_port()
        self.data = tmp / "data"
        self.cfg = tmp / "node.yaml"
        if "max_subscribers_per_client" in HttpConfig.__struct_fields__:
            http += ", max_subscribers_per_client: 1000"  # the clients share one address
        if "max_subscribers_per_credential" in HttpConfig.__struct_fields__:
            http += ", max_subscribers_per_credential: 1000"  # ... and one token
        self.cfg.write_text(
            CONFIG.format(
                data=self.data, http=self.http, port=self.port, source_extra=source,
                http_extra=http,
            )
        )  # fmt: skip
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "logfactory", "run", "-c", str(self.cfg), "--quiet"],
            start_new_session=True,
        )
        wait_port(self.http)
        wait_healthy(self.http)
        self.token = admin_token(self.data)  # every route but health needs it (issue 15)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stats(self) -> dict[str, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.http, timeout=10)
        try:
            conn.request("GET", "/api/v1/stats", headers=bearer(self.token))
            return dict(json.loads(conn.getresponse().read()))
        finally:
            conn.close()

    def subscribers(self) -> int:
        return int(self.stats()["api"]["subscribers"])

    def close(self) -> None:
        stop_node(self.proc)


def fill_backlog(node: Node, events: int) -> None:
    """``events`` ALERT envelopes of about 900 bytes on the node's bus; a random session field
    keeps them from compressing to nothing (the bus packs rows with LZ4), so the database is
    about as large as the events."""
    from logfactory.bus.base import TopicSpec
    from logfactory.bus.local import LocalBus
    from logfactory.event import Event, Header, encode_event

    bus = LocalBus(node.data / "bus", create=False)
    bus.ensure_topic(TopicSpec("events.ALERT", 4))
    producer = bus.producer()
    noise = [os.urandom(192).hex() for _ in range(4096)]
    for i in range(events):
        event = Event(
            header=Header(
                id=f"bench-{i:08d}", time="2026-12-01T00:00:00.000000Z", type="ALERT",
                subtype="PASSWORD_ATTACK", severity="warning", source="syslog",
                host=f"cn{i % 64:02d}", received="2026-12-01T00:00:00.000100Z",
            ),
            body={"user": f"usr{i % 313}", "addr": f"10.1.{i % 250}.{i % 200}",
                  "count": i % 17, "message": f"Failed password for usr{i % 313} from ssh2",
                  "session": noise[i % 4096]},
        )  # fmt: skip
        producer.produce("events.ALERT", encode_event(event), f"cn{i % 64:02d}".encode())
    producer.flush()
    producer.close()
    bus.close()
    # as on a node that has run a while: the history in the database file, not in its WAL
    # (streams then read it through SQLite's memory map, where the node's connections map it)
    with contextlib.closing(sqlite3.connect(node.data / "bus" / "bus.sqlite3")) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


# -- SSE clients (a child process) -----------------------------------------------------------
def _sse_clients(
    port: int, token: str, n: int, query: str, stop: Any, out: Any, ready: Any
) -> None:
    """``n`` subscribers (``query`` added to ``from=earliest``) at once; read and discard until
    ``stop`` or until every stream has ended; report the status line of each, the bytes read
    and when the last stream ended."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    request = (
        f"GET /api/v1/subscribe?types=ALERT&from=earliest{query} HTTP/1.1\r\n"
        f"Host: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        "Accept: text/event-stream\r\nConnection: close\r\n\r\n"
    ).encode()
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        socks.append(s)
    for s in socks:  # the burst: every request goes out before any answer is read
        s.sendall(request)
    sel = selectors.DefaultSelector()
    heads: dict[socket.socket, bytes] = {}
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        heads[s] = b""
    total = 0
    statuses: dict[str, int] = {}
    buf = bytearray(1 << 20)
    ready.set()
    t0 = time.perf_counter()
    while not stop.is_set() and sel.get_map():
        for key, _ in sel.select(0.1):
            conn = key.fileobj
            assert isinstance(conn, socket.socket)
            try:
                got = conn.recv_into(buf)
            except OSError:
                got = 0
            if not got:
                sel.unregister(conn)
                continue
            total += got
            if conn in heads and b"\r\n" not in heads[conn]:
                heads[conn] += bytes(buf[: min(got, 64)])
                if b"\r\n" in heads[conn]:
                    code = heads[conn].split(b" ", 2)[1].decode()
                    statuses[code] = statuses.get(code, 0) + 1
    seconds = time.perf_counter() - t0
    for s in socks:
        s.close()
    out.put({"statuses": statuses, "bytes": total, "seconds": seconds})


def _ingest_probe(port: int, token: str, seconds: float, rate: int) -> list[float]:
    """Round trips (ms) of small ingest requests, one at a time, at about ``rate`` a second."""
    body = b"".join(b"<13>Dec  1 00:00:00 cn01 app: probe line %d\n" % i for i in range(10))
    headers = {"Content-Type": "text/plain", **bearer(token)}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    out: list[float] = []
    t_end = time.perf_counter() + seconds
    while (now := time.perf_counter()) < t_end:
        conn.request("POST", "/api/v1/ingest", body=body, headers=headers)
        reply = conn.getresponse()
        reply.read()
        out.append((time.perf_counter() - now) * 1000)
        if reply.status != 200:
            raise RuntimeError(f"ingest answered {reply.status}")
        time.sleep(max(0.0, now + 1 / rate - time.perf_counter()))
    conn.close()
    return out


def _p(values: list[float], q: float) -> float:
    return round(percentile(sorted(values), q), 2)


def sse_step(node: Node, n: int, seconds: float, idle_rss: float) -> dict[str, Any]:
    """``n`` subscribers connect at once and read for ``seconds``: RSS, ingest, admission.
    Memory per subscriber is counted from ``idle_rss``, the node's RSS before any stream."""
    ctx = mp.get_context("spawn")
    stop, ready, out = ctx.Event(), ctx.Event(), ctx.Queue()
    before = rss_mb(node.pid)
    proc = ctx.Process(target=_sse_clients, args=(node.http, node.token, n, "", stop, out, ready))
    proc.start()
    ready.wait(60)
    samples: list[float] = []
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            samples.append(rss_mb(node.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    time.sleep(1.0)  # let the burst be admitted (or refused)
    admitted = node.subscribers()
    lat = _ingest_probe(node.http, node.token, seconds, PROBE_RATE)
    stop.set()
    result = out.get(timeout=60)
    proc.join(30)
    deadline = time.monotonic() + 60
    while node.subscribers() and time.monotonic() < deadline:
        time.sleep(0.2)
    left = node.subscribers()
    time.sleep(2.0)  # the node's own cleanup (connections closed, memory trimmed)
    sampling.set()
    sampler.join()
    after = rss_mb(node.pid)
    peak = max(samples)
    return {
        "connects": n,
        "admitted": admitted,
        "statuses": result["statuses"],
        "bytes_read": result["bytes"],
        "rss_before_mb": round(before, 1),
        "rss_peak_mb": round(peak, 1),
        "rss_after_mb": round(after, 1),
        "memory_per_subscriber_mb": round((peak - idle_rss) / max(1, admitted), 2),
        "subscribers_after": left,
        "ingest_requests": len(lat),
        "ingest_p50_ms": _p(lat, 0.5),
        "ingest_p99_ms": _p(lat, 0.99),
    }


def sse_full_read(node: Node, n: int, backlog: int) -> dict[str, Any]:
    """``n`` subscribers each read the whole backlog: what a stream costs once it has been
    through all of it (a page cache and a memory map grow with what was read), and how fast
    the streams catch up together. Memory per subscriber counts from the RSS just before."""
    ctx = mp.get_context("spawn")
    before = rss_mb(node.pid)
    stop, ready, out = ctx.Event(), ctx.Event(), ctx.Queue()
    proc = ctx.Process(
        target=_sse_clients,
        args=(node.http, node.token, n, f"&limit={backlog}", stop, out, ready),
    )
    proc.start()
    ready.wait(60)
    peak = 0.0
    while proc.is_alive() and out.empty():
        peak = max(peak, rss_mb(node.pid))
        time.sleep(0.2)
    result = out.get(timeout=600)
    proc.join(30)
    while node.subscribers():
        time.sleep(0.2)
    time.sleep(2.0)
    return {
        "subscribers": n,
        "events_each": backlog,
        "statuses": result["statuses"],
        "seconds": round(result["seconds"], 1),
        "events_per_s": round(n * backlog / result["seconds"]),
        "rss_before_mb": round(before, 1),
        "rss_peak_mb": round(peak, 1),
        "memory_per_subscriber_mb": round((peak - before) / n, 2),
        "rss_after_mb": round(rss_mb(node.pid), 1),
    }


def sse(backlog: int, burst: int, seconds: float) -> dict[str, Any]:
    """The SSE measurements on one node. Ingest without subscribers is measured before the
    streams and again after them (the machine is shared: a reference taken at one end only
    compares a quiet minute with a busy one); the ratios are to both windows together."""
    with tempfile.TemporaryDirectory() as tmp:
        node = Node(Path(tmp))
        try:
            fill_backlog(node, backlog)
            time.sleep(2.0)
            rss_idle = rss_mb(node.pid)
            quiet = _ingest_probe(node.http, node.token, seconds, PROBE_RATE)
            print(json.dumps({"sse_0": {"ingest_p99_ms": _p(quiet, 0.99)}}), flush=True)
            steps = []
            for n in (64, burst):
                step = sse_step(node, n, seconds, rss_idle)
                print(json.dumps({f"sse_{n}": step}), flush=True)
                steps.append(step)
            full = sse_full_read(node, FULL_READERS, backlog)
            print(json.dumps({"sse_full_read": full}), flush=True)
            after = _ingest_probe(node.http, node.token, seconds, PROBE_RATE)
            alive = node.alive()
        finally:
            node.close()
    base = {
        "rss_mb": round(rss_idle, 1),
        "ingest_requests": len(quiet) + len(after),
        "ingest_p50_ms": _p(quiet + after, 0.5),
        "ingest_p99_ms": _p(quiet + after, 0.99),
        "ingest_p99_ms_before_streams": _p(quiet, 0.99),
        "ingest_p99_ms_after_streams": _p(after, 0.99),
    }
    print(json.dumps({"sse_0": base}), flush=True)
    with_64, capped = steps
    return {
        "backlog_events": backlog,
        "without_subscribers": base,
        "with_64": with_64,
        "burst": capped,
        "whole_backlog": full,
        "memory_per_subscriber_mb": max(
            full["memory_per_subscriber_mb"], *(s["memory_per_subscriber_mb"] for s in steps)
        ),
        "ingest_p99_ratio_with_64": round(with_64["ingest_p99_ms"] / base["ingest_p99_ms"], 2),
        "ingest_p99_ratio_at_cap": round(capped["ingest_p99_ms"] / base["ingest_p99_ms"], 2),
        "node_alive": alive,
    }


# -- idle connections ------------------------------------------------------------------------
IDLE_TIMEOUT_S = 10
"""The idle timeout the benchmark gives both listeners, where the node has the setting."""


def _listener_settings() -> tuple[str, str]:
    """YAML for the syslog source and the ``http`` section: issue 13 item 1's per-listener
    idle timeout when this build has it (``connection_idle_timeout``), else nothing: the
    benchmark then measures a node without it. The connection caps keep their defaults."""
    import logfactory.config as config
    from logfactory.config import HttpConfig

    # a struct per source type since issue 14 item 1; one SourceConfig struct before it
    syslog: Any = getattr(config, "SyslogSourceConfig", None) or config.SourceConfig
    source = http = ""
    if "connection_idle_timeout" in syslog.__struct_fields__:
        source = f", connection_idle_timeout: {IDLE_TIMEOUT_S}s"
    if "connection_idle_timeout" in HttpConfig.__struct_fields__:
        http = f", connection_idle_timeout: {IDLE_TIMEOUT_S}s"
    return source, http


def _held(socks: list[socket.socket]) -> int:
    """How many of ``socks`` the peer has not closed (no EOF, no reset)."""
    held = 0
    for s in socks:
        s.setblocking(False)
        try:
            held += 0 if s.recv(1) == b"" else 1
        except BlockingIOError:
            held += 1
        except OSError:
            pass
    return held


def _open_idle(port: int, count: int) -> list[socket.socket]:
    socks: list[socket.socket] = []
    for _ in range(count):
        try:
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        except OSError:
            break
    return socks


def _health(node: Node) -> int | None:
    """The health endpoint's status from a new connection, None if it does not answer."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", node.http, timeout=5)
        conn.request("GET", "/api/v1/health")
        status = conn.getresponse().status
        conn.close()
        return status
    except OSError:
        return None


def _syslog_gets_through(node: Node, deadline: float) -> bool:
    """A new sender's line reaches ``logs.raw`` (the sender reconnects until ``deadline``)."""
    from logfactory.bus.local import LocalBus
    from logfactory.topics import RAW

    bus = LocalBus(node.data / "bus", create=False)
    try:
        before = sum(hi for _lo, hi in bus.watermarks(RAW).values())
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", node.port), timeout=2) as s,
            ):
                s.sendall(b"<13>Dec  1 00:00:00 cn01 app: a new sender gets through\n")
                until = min(deadline, time.monotonic() + 1.0)
                while time.monotonic() < until:
                    if sum(hi for _lo, hi in bus.watermarks(RAW).values()) > before:
                        return True
                    time.sleep(0.05)
            time.sleep(0.2)
        return False
    finally:
        bus.close()


def idle_connections(count: int) -> dict[str, Any]:
    """``count`` silent connections to each listener in turn (syslog TCP, the HTTP API): how
    many the node holds, whether a new client still gets served, how many remain after the
    idle timeout."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, count + 512)), hard))
    source, http_extra = _listener_settings()
    out: dict[str, Any] = {
        "idle_timeout": f"{IDLE_TIMEOUT_S} s" if source else "none (not in this build)",
    }
    with tempfile.TemporaryDirectory() as tmp:
        node = Node(Path(tmp), source=source, http=http_extra)
        try:
            for name, port in (("syslog_tcp", node.port), ("http_api", node.http)):
                t0 = time.monotonic()
                socks = _open_idle(port, count)
                time.sleep(2.0)
                held = _held(socks) if node.alive() else 0
                health = _health(node)
                t1 = time.monotonic()
                deadline = t1 + IDLE_TIMEOUT_S + 10
                if name == "syslog_tcp":
                    served = _syslog_gets_through(node, deadline)
                else:
                    served = False
                    while not served and time.monotonic() < deadline:
                        served = _health(node) is not None
                served_in = round(time.monotonic() - t1, 2) if served else None
                time.sleep(max(0.0, t0 + IDLE_TIMEOUT_S + 3 - time.monotonic()))
                left = _held(socks) if node.alive() else 0
                for s in socks:
                    s.close()
                out[name] = {
                    "opened": len(socks), "held_after_2_s": held,
                    "health_status_meanwhile": health, "new_client_served": served,
                    "new_client_served_in_s": served_in,
                    f"held_after_{IDLE_TIMEOUT_S + 3}_s": left, "node_alive": node.alive(),
                }  # fmt: skip
                print(json.dumps({f"idle_{name}": out[name]}), flush=True)
                if not node.alive():
                    break
        finally:
            node.close()
    return out


# -- decompression ---------------------------------------------------------------------------
def worst_body(encoding: str, size: int) -> bytes:
    """``size`` bytes of empty gzip members, zstd frames or lz4 frames, back to back."""
    import lz4.frame  # type: ignore[import-untyped]
    import zstandard

    if encoding == "gzip":
        member = gzip.compress(b"", mtime=0)
    elif encoding == "zstd":
        member = zstandard.ZstdCompressor().compress(b"")
    else:
        member = lz4.frame.compress(b"")
    return member * (size // len(member))


def _decompress_child(encoding: str, size: int, out: Any) -> None:
    """Time ``decompress`` on the worst body as the ingest endpoint calls it, and - where it
    takes a member cap and a CPU budget (issue 13 item 3) - with both lifted, which shows
    what a body of that size costs when every member is really read."""
    import inspect

    from logfactory.api.ingest_body import decompress

    body = worst_body(encoding, size)
    params = inspect.signature(decompress).parameters
    runs: dict[str, dict[str, Any]] = {"as served": {}}
    if "max_members" in params and "cpu_budget" in params:
        runs["every member"] = {"max_members": len(body), "cpu_budget": float("inf")}
    result: dict[str, Any] = {"body_bytes": len(body)}
    for name, kwargs in runs.items():
        t0 = time.perf_counter()
        try:
            decompress(body, encoding, size, **kwargs)  # type: ignore[arg-type]
            outcome = "decompressed"
        except Exception as exc:
            outcome = f"refused: {type(exc).__name__}: {exc}"[:200]
        result[name] = {"seconds": round(time.perf_counter() - t0, 3), "outcome": outcome}
    out.put(result)


def decompression(size: int, deadline_s: float) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    out: dict[str, Any] = {}
    for encoding in ("gzip", "zstd", "lz4"):
        queue = ctx.Queue()
        proc = ctx.Process(target=_decompress_child, args=(encoding, size, queue))
        proc.start()
        try:
            out[encoding] = queue.get(timeout=deadline_s)
        except Exception:
            late = {"seconds": None, "outcome": f"still running after {deadline_s} s"}
            out[encoding] = {"as served": late}
        if proc.is_alive():
            proc.kill()
        proc.join()
        print(json.dumps({f"decompress_{encoding}": out[encoding]}), flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backlog", type=int, default=BACKLOG)
    parser.add_argument("--burst", type=int, default=BURST)
    parser.add_argument("--seconds", type=float, default=READ_S)
    parser.add_argument("--idle", type=int, default=1_100)
    parser.add_argument("--skip", nargs="*", default=[], choices=["sse", "idle", "decompress"])
    args = parser.parse_args(argv)
    result: dict[str, Any] = {}
    if "decompress" not in args.skip:
        result["decompression_16mib"] = decompression(WORST_BODY, DECOMPRESS_DEADLINE_S)
    if "sse" not in args.skip:
        result["sse"] = sse(args.backlog, args.burst, args.seconds)
    if "idle" not in args.skip:
        result["idle_connections"] = idle_connections(args.idle)
    result["targets"] = TARGETS
    write_result("resilience", result)


if __name__ == "__main__":
    main()
