"""Pipeline benchmark: factory throughput, and end-to-end latency through a running node.

Throughput: one factory worker in this process, mixed realistic input from the demo generator
already on ``logs.raw`` of a fresh local bus, timed from the first poll until every input offset
is committed (outputs durable). Latency: a real node (`logfactory run`, subprocesses) receives
middleware lines over syslog TCP at a fixed rate; a subscriber in this process measures
collector-receive (``header.received``) to subscriber-receive for every event.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import percentile, write_result
from logfactory.bus.local import LocalBus
from logfactory.collect.sources.demo import DemoGenerator
from logfactory.config import load_config, parse_config
from logfactory.factory.worker import FactoryWorker
from logfactory.record import encode_record, make_record, now_ns
from logfactory.stats import StatsRegistry
from logfactory.topics import RAW, ensure_topics

ROOT = Path(__file__).resolve().parent.parent


def throughput(records: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        text = (ROOT / "examples" / "demo.yaml").read_text()
        config = parse_config(text.replace("var/demo", f"{tmp}/data"), "bench.yaml")
        bus = LocalBus(Path(config.node.data_dir) / "bus")
        ensure_topics(bus, config)
        producer = bus.producer()
        gen = DemoGenerator(seed=7, hosts=64, start_ns=now_ns())
        for tag, host, line in gen.lines(records):
            rec = make_record(tag, host, line.encode())
            producer.produce(RAW, encode_record(rec), host.encode())
        producer.flush()
        producer.close()
        registry = StatsRegistry("bench")
        worker = FactoryWorker(config, bus, registry)
        total = sum(hi for _lo, hi in bus.watermarks(RAW).values())
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,))
        start = time.perf_counter()
        thread.start()
        while sum(bus.committed(config.factory.group, RAW).values()) < total:
            time.sleep(0.005)
        elapsed = time.perf_counter() - start
        stop.set()
        thread.join()
        snap = registry.snapshot()["counters"]
        events = sum(c.get("sent", 0) for g, c in snap.items() if g.startswith("events:"))
        bus.close()
    return {
        "throughput_records_per_s": round(total / elapsed, 1),
        "throughput_records": total,
        "throughput_events": events,
        "throughput_seconds": round(elapsed, 3),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} not ready")


LATENCY_CONFIG = """
node: {{name: bench, data_dir: {data}, timezone: UTC}}
bus: {{type: local, partitions: 4}}
http: {{listen: 127.0.0.1:{http}}}
sources:
  - {{type: syslog, name: sce-tcp, tag: sce, listen: 127.0.0.1:{port}, protocols: [tcp]}}
workshops:
  sce: {{format: kv, fields: [time, host, user, addr, op, params], time_field: time}}
mappings:
  - name: user-op
    when: {{workshop: sce}}
    type: USER_OP
    subtype: "{{op}}"
    body: {{user: "{{user}}", addr: "{{addr}}", op: "{{op}}"}}
    params: "{{params}}"
"""


def _wait_healthy(http: int, timeout: float = 60.0) -> None:
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


def latency(rate: int, seconds: int) -> dict[str, float]:
    from logfactory.subscribe import Subscriber

    with tempfile.TemporaryDirectory() as tmp:
        port, http = _free_port(), _free_port()
        cfg = Path(tmp) / "bench.yaml"
        cfg.write_text(LATENCY_CONFIG.format(data=f"{tmp}/data", port=port, http=http))
        config = load_config(cfg)
        node = subprocess.Popen(
            [sys.executable, "-m", "logfactory", "run", "-c", str(cfg), "--quiet"],
            start_new_session=True,
        )
        try:
            _wait_port(port)
            _wait_healthy(http)
            lat: list[float] = []
            expected = rate * seconds
            sub = Subscriber(["USER_OP"], config=config, start="earliest", poll_timeout=0.2)

            def reader() -> None:
                for env in sub:
                    got = time.time_ns()
                    received = env["header"]["received"]
                    lat.append((got - _parse(received)) / 1e6)
                    if len(lat) >= expected:
                        return

            t = threading.Thread(target=reader, daemon=True)
            t.start()
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                start = time.perf_counter()
                for i in range(expected):
                    due = start + i / rate
                    delay = due - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    line = (
                        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())}|login{i % 8:02d}|"
                        f"usr{i % 97}|10.1.{i % 250}.{i % 200}|QUERY_RESOURCE|cpus={i % 64} n={i}\n"
                    )
                    s.sendall(line.encode())
            t.join(timeout=60)
            sub.close()
        finally:
            os.killpg(node.pid, signal.SIGINT)
            node.wait(timeout=60)
    lat.sort()
    return {
        "latency_rate_per_s": rate,
        "latency_seconds": seconds,
        "latency_events": len(lat),
        "latency_p50_ms": round(percentile(lat, 0.50), 2),
        "latency_p99_ms": round(percentile(lat, 0.99), 2),
        "latency_max_ms": round(lat[-1], 2) if lat else float("nan"),
    }


def _parse(text: str) -> int:
    """Envelope time (RFC 3339, microseconds, Z) -> UTC ns."""
    dt = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return int(dt.timestamp() * 1_000_000) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args()
    result: dict[str, float] = {}
    result.update(throughput(args.records))
    result.update(latency(args.rate, args.seconds))
    result["targets"] = {"throughput_records_per_s": 20000, "latency_p99_ms": 20}  # type: ignore[assignment]
    write_result("pipeline", result)


if __name__ == "__main__":
    main()
