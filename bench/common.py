"""Helpers every benchmark shares: where results go, what machine produced them, and how a
running node (``logfactory run`` in a subprocess) is driven and timed end to end."""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gib = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": mem_gib,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "reference_loop_ms": reference_loop_ms(),
    }


def reference_loop_ms() -> float:
    """A fixed pure-Python workload (best of 5), timed when the result is written.

    The reference machine is a VM whose speed moved by up to 1.5x within a day (the host's
    other guests). Figures from two runs compare fairly only together with this number: a run
    whose loop took 1.3x longer ran on a 1.3x slower CPU.
    """
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        seen: dict[str, int] = {}
        for i in range(200_000):
            key = f"k{i % 997}"
            seen[key] = seen.get(key, 0) + len(key)
        best = min(best, time.perf_counter() - t0)
    return round(best * 1000, 1)


def cpu_ticks(pid: int) -> int:
    """CPU time (user + system, in clock ticks) process ``pid`` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs."""
    parts = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts) - idle, sum(parts)


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {
        "benchmark": name,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        **data,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(json.dumps(data, indent=2))
    return path


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} not ready")


def wait_healthy(http: int, timeout: float = 60.0) -> None:
    """The node answers 200 once the factory reports: only then is the pipeline warm."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http}/api/v1/health", timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise RuntimeError("node never became healthy")


def admin_token(data_dir: Path, timeout: float = 60.0) -> str:
    """The admin API token of the node whose data directory is ``data_dir``.

    Every route of the API but health needs a credential (issue 15); a node writes its first
    admin token to ``<data_dir>/admin-credentials.json`` on its first start, before it serves,
    so this waits for the file rather than assuming the order of a subprocess's start.
    """
    from logfactory.access.bootstrap import LocalCredentialError, local_token

    deadline = time.monotonic() + timeout
    while True:
        try:
            return local_token(data_dir)
        except LocalCredentialError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def bearer(token: str) -> dict[str, str]:
    """The header that carries ``token`` on a request."""
    return {"Authorization": f"Bearer {token}"}


class NodeProcess:
    """``logfactory run -c <tmp>/node.yaml`` on a fresh data directory ``<tmp>/data``: healthy
    and with its admin token read once the constructor returns.

    ``config`` is the YAML text with ``{data}`` and ``{http}`` to fill in (the data directory
    and the API's port, a free one)."""

    def __init__(self, tmp: Path, config: str) -> None:
        self.http = free_port()
        self.data = tmp / "data"
        self.cfg = tmp / "node.yaml"
        self.cfg.write_text(config.format(data=self.data, http=self.http))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "logfactory", "run", "-c", str(self.cfg), "--quiet"],
            start_new_session=True,
        )
        try:
            wait_port(self.http)
            wait_healthy(self.http)
            self.token = admin_token(self.data)
        except BaseException:
            self.close()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        stop_node(self.proc)


def stop_node(proc: subprocess.Popen[bytes]) -> None:
    """Stop a node started in a session of its own: SIGINT to its group, SIGKILL after 60 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def parse_time_ns(text: str) -> int:
    """Envelope time (RFC 3339, microseconds, Z) -> UTC ns."""
    dt = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return int(dt.timestamp() * 1_000_000) * 1000


def node_latencies(
    cfg: Path, port: int, http: int, rate: int, seconds: int, warmup: int = 0
) -> list[float]:
    """Run ``logfactory run -c cfg``, send ``rate`` sce lines/s to its syslog TCP ``port`` for
    ``seconds``, and return collector-receive to subscriber-receive of every USER_OP, in ms, in
    arrival order.

    ``cfg`` must define that source, an ``sce`` kv workshop mapped to USER_OP and the API on
    ``http`` (see pipeline.LATENCY_CONFIG). The node is healthy before the first line. With
    ``warmup``, that many lines are sent first (at ``rate``) and their events awaited and left
    out: first-use costs (e.g. Kafka creating its transaction log) then do not count. Events
    still missing 60 s after the last line are simply absent from the result.
    """
    from logfactory.config import load_config
    from logfactory.subscribe import Subscriber

    config = load_config(cfg)
    node = subprocess.Popen(
        [sys.executable, "-m", "logfactory", "run", "-c", str(cfg), "--quiet"],
        start_new_session=True,
    )
    lat: list[float] = []
    try:
        wait_port(port)
        wait_healthy(http)
        expected = warmup + rate * seconds
        sub = Subscriber(["USER_OP"], config=config, start="earliest", poll_timeout=0.2)

        def reader() -> None:
            for env in sub:
                got = time.time_ns()
                received = env["header"]["received"]
                lat.append((got - parse_time_ns(received)) / 1e6)
                if len(lat) >= expected:
                    return

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _send(s, 0, warmup, rate)
            deadline = time.monotonic() + 120
            while len(lat) < warmup and time.monotonic() < deadline:
                time.sleep(0.05)
            _send(s, warmup, expected, rate)
        t.join(timeout=60)
        sub.close()
    finally:
        os.killpg(node.pid, signal.SIGINT)
        node.wait(timeout=60)
    return lat[warmup:]


def _send(sock: socket.socket, first: int, end: int, rate: int) -> None:
    """Lines ``first`` .. ``end`` - 1, paced at ``rate`` per second from now."""
    start = time.perf_counter()
    for i in range(first, end):
        due = start + (i - first) / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        line = (
            f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())}|login{i % 8:02d}|"
            f"usr{i % 97}|10.1.{i % 250}.{i % 200}|QUERY_RESOURCE|cpus={i % 64} n={i}\n"
        )
        sock.sendall(line.encode())


def latency_summary(lat: list[float], rate: int, seconds: int) -> dict[str, float]:
    lat = sorted(lat)
    return {
        "latency_rate_per_s": rate,
        "latency_seconds": seconds,
        "latency_events": len(lat),
        "latency_p50_ms": round(percentile(lat, 0.50), 2),
        "latency_p99_ms": round(percentile(lat, 0.99), 2),
        "latency_max_ms": round(lat[-1], 2) if lat else float("nan"),
    }
