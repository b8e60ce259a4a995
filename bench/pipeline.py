"""Pipeline benchmark: factory throughput, and end-to-end latency through a running node.

Throughput: one factory worker in this process, mixed realistic input from the demo generator
already on ``logs.raw`` of a fresh local bus, timed from the first poll until every input offset
is committed (outputs durable). Latency: a real node (`logfactory run`, subprocesses) receives
middleware lines over syslog TCP at a fixed rate; a subscriber in this process measures
collector-receive (``header.received``) to subscriber-receive for every event.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from bench.common import free_port, latency_summary, node_latencies, write_result
from logfactory.bus.local import LocalBus
from logfactory.collect.sources.demo import DemoGenerator
from logfactory.config import parse_config
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


def latency(rate: int, seconds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        port, http = free_port(), free_port()
        cfg = Path(tmp) / "bench.yaml"
        cfg.write_text(LATENCY_CONFIG.format(data=f"{tmp}/data", port=port, http=http))
        lat = node_latencies(cfg, port, http, rate, seconds)
    return latency_summary(lat, rate, seconds)


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
