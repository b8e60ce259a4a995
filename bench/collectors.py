"""Collector benchmark (issue 5): what ``logfactory collect`` puts on ``logs.raw`` per second.

The collector is a real ``logfactory collect`` subprocess on a fresh local bus; what counts is
what reached ``logs.raw`` (the topic's watermarks), never what was sent.

* **syslog UDP / TCP**: rates are stepped up (25k to 150k lines/s by 25k, then 200k, 250k,
  300k; up to the first step with a loss); each
  step sends for ``--seconds`` (30) and counts what arrived once the bus stops growing. The
  result is the highest rate with zero loss. Senders are separate processes cycling pre-built
  payloads (TCP: one ``sendall`` of a slice of a pre-built buffer every 10 ms per connection;
  UDP: pre-built datagrams), so their per-line cost is a slice or a ``sendto``.
* **file tail**: N lines appended at full speed (pre-built 1 MiB blocks) by a writer process;
  lines/s = N / (time from the first write until N records are on the bus).
* **HTTP ingest**: sender processes POST the same pre-built gzip NDJSON body (``BODY_LINES``
  records), with the collector's admin token, over keep-alive connections for ``--seconds``;
  records/s counts 200 answers (each one durable on the bus), with 429 answers honoured and
  reported.

For each measurement the collector's CPU (utime + stime from ``/proc/<pid>/stat``) over the
window is reported as a share of one core, and the machine's busy share from ``/proc/stat``:
a collector near 100% of one core is limited by its own Python hot path (one event loop), a
machine near 100% by the 2 cores shared with the senders.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import http.client
import json
import multiprocessing as mp
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import (
    admin_token,
    bearer,
    cpu_ticks,
    free_port,
    machine_ticks,
    wait_port,
    write_result,
)
from logfactory.bus.local import LocalBus
from logfactory.topics import RAW

TICK = os.sysconf("SC_CLK_TCK")
# past 150k in bigger steps: a fast host should show its ceiling, and the ladder stops at the
# first step with a loss, so a slow one pays nothing for them
RATES = [25_000, 50_000, 75_000, 100_000, 125_000, 150_000, 200_000, 250_000, 300_000]
TARGETS = {"syslog_tcp_lines_per_s": 100_000, "syslog_udp_lines_per_s": 100_000,
           "file_lines_per_s": 200_000}  # fmt: skip
SENDERS = 2
BODY_LINES = 5_000
SETTLE_S = 3.0  # the bus count must be still this long before a step is judged


def _line(i: int) -> bytes:
    return (
        f"<13>Nov 21 22:38:{i % 60:02d} host{i % 50:02d} app[{1000 + i % 97}]: request "
        f"{i} user=usr{i % 313} addr=10.1.{i % 250}.{i % 200} status=ok bytes={i % 65536}\n"
    ).encode()


# -- measuring ---------------------------------------------------------------------------------
def children(pid: int) -> list[int]:
    """Child processes of ``pid`` (the collector's bus writer), from /proc."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


class Window:
    """CPU of the collector, of its bus writer process and of the machine between ``start``
    and ``stop``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.t0 = time.perf_counter()
        self.c0 = cpu_ticks(pid)
        self.w0 = {c: cpu_ticks(c) for c in children(pid)}
        self.m0 = machine_ticks()

    def stop(self) -> dict[str, float]:
        seconds = time.perf_counter() - self.t0
        busy, total = machine_ticks()
        writer = 0
        for child, before in self.w0.items():
            with contextlib.suppress(OSError):
                writer += cpu_ticks(child) - before
        return {
            "collector_cpu_pct_of_one_core": round(
                100 * (cpu_ticks(self.pid) - self.c0) / TICK / seconds, 1
            ),
            "bus_writer_cpu_pct_of_one_core": round(100 * writer / TICK / seconds, 1),
            "machine_busy_pct": round(100 * (busy - self.m0[0]) / max(1, total - self.m0[1]), 1),
        }


def raw_count(bus: LocalBus) -> int:
    return sum(hi - lo for lo, hi in bus.watermarks(RAW).values())


def settle(bus: LocalBus, expected: int, timeout: float = 60.0) -> int:
    """The bus count once it reached ``expected`` or stopped growing for SETTLE_S."""
    deadline = time.monotonic() + timeout
    last, still_since = raw_count(bus), time.monotonic()
    while time.monotonic() < deadline and last < expected:
        time.sleep(0.2)
        now = raw_count(bus)
        if now != last:
            last, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= SETTLE_S:
            break
    return last


class Collector:
    """``logfactory collect`` on a fresh local bus in ``tmp`` with ``sources`` (YAML list)."""

    def __init__(self, tmp: Path, sources: str, http: int | None = None) -> None:
        self.tmp = tmp
        cfg = tmp / "collect.yaml"
        api = f"http: {{listen: '127.0.0.1:{http}'}}\n" if http else "http: {enabled: false}\n"
        cfg.write_text(f"node: {{data_dir: '{tmp / 'data'}'}}\n{api}sources:\n{sources}")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "logfactory", "collect", "-c", str(cfg), "--quiet"],
            start_new_session=True,
        )
        self.bus: LocalBus | None = None

    def open_bus(self) -> LocalBus:
        deadline = time.monotonic() + 30
        while self.bus is None:
            try:
                bus = LocalBus(self.tmp / "data" / "bus")
                if RAW in bus.topics():
                    self.bus = bus
                    break
                bus.close()
            except Exception:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.1)
        return self.bus

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.bus is not None:
            self.bus.close()


# -- senders (child processes) ---------------------------------------------------------------
def _tcp_sender(port: int, rate: float, seconds: float, start_at: float, out: Any) -> None:
    block = b"".join(_line(i) for i in range(20_000))
    offsets = [0]
    for i in range(20_000):
        offsets.append(offsets[-1] + len(_line(i)))
    per_tick, tick = rate / 100, 0.01
    sent = 0
    with socket.create_connection(("127.0.0.1", port)) as s:
        time.sleep(max(0.0, start_at - time.time()))
        t0 = time.perf_counter()
        while (elapsed := time.perf_counter() - t0) < seconds:
            due = int(min(elapsed + tick, seconds) * rate)
            while sent < due:
                first = sent % 20_000
                n = min(due - sent, 20_000 - first)
                s.sendall(block[offsets[first] : offsets[first + n]])
                sent += n
            time.sleep(max(0.0, t0 + (sent / rate) - time.perf_counter()) if per_tick else 0)
    out.put(sent)


def _udp_sender(port: int, rate: float, seconds: float, start_at: float, out: Any) -> None:
    grams = [_line(i)[:-1] for i in range(20_000)]
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("127.0.0.1", port))
        send = s.send
        time.sleep(max(0.0, start_at - time.time()))
        t0 = time.perf_counter()
        while (elapsed := time.perf_counter() - t0) < seconds:
            due = int(min(elapsed + 0.005, seconds) * rate)
            for i in range(sent, due):
                send(grams[i % 20_000])
            sent = max(sent, due)
            time.sleep(max(0.0, t0 + sent / rate - time.perf_counter()))
    out.put(sent)


def _run_senders(target: Callable[..., None], port: int, rate: int, seconds: float) -> int:
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    start_at = time.time() + 0.5
    procs = [
        ctx.Process(target=target, args=(port, rate / SENDERS, seconds, start_at, out))
        for _ in range(SENDERS)
    ]
    for p in procs:
        p.start()
    total = sum(int(out.get(timeout=seconds + 60)) for _ in procs)
    for p in procs:
        p.join()
    return total


# -- the measurements ------------------------------------------------------------------------
def syslog(proto: str, rates: list[int], seconds: float) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        source = (
            f"  - {{type: syslog, name: sys, listen: '127.0.0.1:{port}', protocols: [{proto}]}}\n"
        )
        collector = Collector(Path(tmp), source)
        try:
            bus = collector.open_bus()
            if proto == "tcp":
                wait_port(port)
            sender = _tcp_sender if proto == "tcp" else _udp_sender
            for rate in rates:
                before = raw_count(bus)
                window = Window(collector.proc.pid)
                sent = _run_senders(sender, port, rate, seconds)
                cpu = window.stop()
                got = settle(bus, before + sent) - before
                # TCP flow control slows the senders down instead of losing: a step counts
                # only if the rate was really offered
                offered = sent >= 0.98 * rate * seconds
                step = {"rate": rate, "sent": sent, "offered_rate": round(sent / seconds),
                        "received": got, "lost": sent - got, "clean": got == sent and offered,
                        **cpu}  # fmt: skip
                print(json.dumps({proto: step}), flush=True)
                steps.append(step)
                if not step["clean"]:
                    break  # higher rates only lose more
        finally:
            collector.close()
    clean = [s["rate"] for s in steps if s["clean"]]
    return {"best_lines_per_s": max(clean, default=0), "steps": steps}


def file_tail(lines: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp) / "logs"
        logs.mkdir()
        path = logs / "app.log"
        path.touch()
        collector = Collector(
            Path(tmp), f"  - {{type: file, name: app, paths: ['{logs}/*.log']}}\n"
        )
        try:
            bus = collector.open_bus()
            block = b"".join(_line(i)[4:] for i in range(10_000))  # no syslog PRI: a plain log
            window = Window(collector.proc.pid)
            t0 = time.perf_counter()
            written = 0
            with open(path, "ab", buffering=0) as f:
                while written < lines:
                    n = min(10_000, lines - written)
                    f.write(block if n == 10_000 else b"".join(_line(i)[4:] for i in range(n)))
                    written += n
            write_s = time.perf_counter() - t0
            while raw_count(bus) < lines and time.perf_counter() - t0 < 300:
                time.sleep(0.02)
            elapsed = time.perf_counter() - t0
            got = raw_count(bus)
            cpu = window.stop()
        finally:
            collector.close()
    return {
        "lines": lines,
        "received": got,
        "write_seconds": round(write_s, 3),
        "seconds": round(elapsed, 3),
        "lines_per_s": round(got / elapsed),
        **cpu,
    }


def file_source_only(lines: int) -> dict[str, Any]:
    """The file source and the agent's emit alone (a producer that drops everything), in this
    process: what the collector's own hot path costs, without the bus behind it."""
    import asyncio

    from logfactory.collect.agent import Agent
    from logfactory.config import Config, NodeConfig, source_config
    from logfactory.stats import StatsRegistry

    class NullProducer:
        def produce(self, topic: str, value: bytes, key: bytes | None = None) -> None:
            return None

        def flush(self, timeout: float | None = None) -> None:
            return None

        def close(self) -> None:
            return None

    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp) / "logs"
        logs.mkdir()
        block = b"".join(_line(i)[4:] for i in range(10_000))
        with open(logs / "app.log", "wb") as f:
            for _ in range(lines // 10_000):
                f.write(block)
        total = lines // 10_000 * 10_000
        source = source_config(type="file", name="app", paths=[str(logs / "*.log")])
        config = Config(node=NodeConfig(data_dir=f"{tmp}/data"), sources=[source])
        agent = Agent(config, NullProducer(), StatsRegistry("bench"))

        async def run() -> float:
            stop = asyncio.Event()
            task = asyncio.create_task(agent.run(stop))
            t0 = time.perf_counter()
            while sum(c[0] for c in agent._counts.values()) < total:
                await asyncio.sleep(0.005)
            elapsed = time.perf_counter() - t0
            stop.set()
            await task
            return elapsed

        elapsed = asyncio.run(run())
    return {"lines": total, "seconds": round(elapsed, 3), "lines_per_s": round(total / elapsed)}


def local_bus_only(records: int) -> dict[str, Any]:
    """The local bus's producer alone (with its writer process, as a node uses it), fed
    pre-encoded file-source records from this process: the ceiling every collector on the
    local bus shares."""
    from logfactory.bus.base import TopicSpec
    from logfactory.record import encode_record, make_record

    values = [
        encode_record(make_record("app", "h1", _line(i)[4:-1], {"path": "/l/a.log", "offset": i}))
        for i in range(10_000)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        bus = LocalBus(Path(tmp) / "bus")
        bus.ensure_topic(TopicSpec(RAW, 4))
        producer = bus.producer(offload=True)  # as the node's collectors use it
        t0 = time.perf_counter()
        for i in range(records):
            producer.produce(RAW, values[i % 10_000], b"h%d" % (i % 50))
        producer.flush()
        elapsed = time.perf_counter() - t0
        producer.close()
        bus.close()
    return {
        "records": records,
        "seconds": round(elapsed, 3),
        "records_per_s": round(records / elapsed),
    }


def _http_sender(
    port: int, token: str, body: bytes, seconds: float, start_at: float, out: Any
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip", **bearer(token)}
    ok = throttled = 0
    time.sleep(max(0.0, start_at - time.time()))
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        conn.request("POST", "/api/v1/ingest", body=body, headers=headers)
        reply = conn.getresponse()
        data = reply.read()
        if reply.status == 200:
            ok += json.loads(data)["accepted"]
        elif reply.status == 429:
            throttled += 1
            time.sleep(float(reply.getheader("Retry-After") or 1) / 10)
        else:
            raise RuntimeError(f"ingest answered {reply.status}: {data[:200]!r}")
    conn.close()
    out.put((ok, throttled))


def http_ingest(seconds: float, senders: int = 4) -> dict[str, Any]:
    body = gzip.compress(
        b"".join(
            json.dumps({"line": _line(i)[4:-1].decode(), "host": f"h{i % 50}"}).encode() + b"\n"
            for i in range(BODY_LINES)
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        collector = Collector(Path(tmp), "  - {type: http, name: web}\n", http=port)
        try:
            bus = collector.open_bus()
            wait_port(port)
            token = admin_token(Path(tmp) / "data")  # the API needs a credential (issue 15)
            ctx = mp.get_context("fork")
            out = ctx.Queue()
            start_at = time.time() + 0.5
            procs = [
                ctx.Process(target=_http_sender, args=(port, token, body, seconds, start_at, out))
                for _ in range(senders)
            ]
            for p in procs:
                p.start()
            time.sleep(0.5)
            window = Window(collector.proc.pid)
            results = [out.get(timeout=seconds + 120) for _ in procs]
            cpu = window.stop()
            for p in procs:
                p.join()
            ok = sum(r[0] for r in results)
            on_bus = raw_count(bus)
        finally:
            collector.close()
    return {
        "body_records": BODY_LINES,
        "body_gzip_bytes": len(body),
        "senders": senders,
        "seconds": seconds,
        "accepted": ok,
        "on_bus": on_bus,
        "throttled_429": sum(r[1] for r in results),
        "records_per_s": round(ok / seconds),
        **cpu,
    }


def _limit(cpu: dict[str, float]) -> str:
    if cpu.get("machine_busy_pct", 0) >= 90:
        return "the machine's 2 cores (collector, its bus writer and the senders)"
    if cpu.get("collector_cpu_pct_of_one_core", 0) >= 80:
        return "the collector process's CPU (one core: its event loop)"
    if cpu.get("bus_writer_cpu_pct_of_one_core", 0) >= 80:
        return "the bus writer process's CPU (SQLite appends)"
    if cpu.get("machine_busy_pct", 0) >= 80:
        return "the machine's 2 cores (shared by the collector and the senders)"
    return "neither CPU limit reached"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="per syslog step and HTTP run")
    ap.add_argument("--rates", default=",".join(map(str, RATES)))
    ap.add_argument("--file-lines", type=int, default=1_000_000)
    args = ap.parse_args(argv)
    rates = [int(r) for r in args.rates.split(",")]
    tcp = syslog("tcp", rates, args.seconds)
    udp = syslog("udp", rates, args.seconds)
    ftail = file_tail(args.file_lines)
    ingest = http_ingest(args.seconds)
    source_only = file_source_only(args.file_lines)
    bus_only = local_bus_only(args.file_lines)
    results = {
        "syslog_tcp_lines_per_s": tcp["best_lines_per_s"],
        "syslog_udp_lines_per_s": udp["best_lines_per_s"],
        "file_lines_per_s": ftail["lines_per_s"],
        "http_ingest_records_per_s": ingest["records_per_s"],
    }
    write_result(
        "collectors",
        {
            "results": results,
            "targets": TARGETS,
            "meets_targets": {k: results[k] >= v for k, v in TARGETS.items()},
            "syslog_tcp": {**tcp, "limit": _limit(tcp["steps"][-1])},
            "syslog_udp": {**udp, "limit": _limit(udp["steps"][-1])},
            "file_tail": {**ftail, "limit": _limit(ftail)},
            "http_ingest": {**ingest, "limit": _limit(ingest)},
            # where the time goes: the source + emit alone vs the local bus's producer alone
            "file_source_only_null_producer": source_only,
            "local_bus_producer_only": bus_only,
            "notes": (
                "machine_busy_pct counts every process on the machine, other work included. "
                "The collector is one Python process (sources, the agent's emit, the producer's "
                "hand-off) and its local bus writer a second one (SQLite appends), so the two "
                "use both cores; the senders share them. Compare "
                "file_source_only_null_producer (the source and emit alone) with "
                "local_bus_producer_only (the bus alone) to see where the time goes"
            ),
            "method": (
                "logfactory collect subprocess on a fresh local bus; counted on logs.raw; "
                f"{SENDERS} sender processes with pre-built payloads; CPU from /proc"
            ),
        },
    )


if __name__ == "__main__":
    main()
