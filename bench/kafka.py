"""Kafka benchmark (issue 3): factory scaling over a consumer group, and replicated latency.

Throughput: for 1 and then 2 factory worker processes (``logfactory factory``), a fresh
single-node broker (topic names are fixed, so a fresh broker is the clean slate) gets N sce
records on ``logs.raw`` *before* any worker starts, so the producer does not compete with the
workers for the CPU. The clock starts when the group's first offset commit appears (JVM and
Python start-up and the group join are excluded) and stops when the committed offsets reach the
end of ``logs.raw``; every commit is a transaction that also holds the batch's outputs, so the
figure is records made durable events per second. The CPU seconds each process (workers,
broker, this poller) and the whole machine spent inside that window are reported, so a reader
can tell whether the 2 cores were the limit. Afterwards a read_committed consumer counts the
events on ``events.USER_OP``: every record must have produced exactly one.

Latency: a 3-node cluster (replication 3, min.insync.replicas 2, producer acks=all), a node
(``logfactory run``) receiving sce lines over syslog TCP at a fixed rate; a subscriber measures
collector-receive (``header.received``) to subscriber-receive for every event, through the
factory's transactions and read_committed reads. The node and workload are pipeline.py's.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from tests.kafka_broker import launch

from bench.common import free_port, latency_summary, node_latencies, percentile, write_result
from bench.pipeline import LATENCY_CONFIG
from logfactory.bus.kafka import KafkaBus
from logfactory.bus.kafka.config import producer_config, split_settings
from logfactory.config import Config, load_config
from logfactory.event import decode_event, topic_for_type
from logfactory.record import encode_record, make_record
from logfactory.topics import RAW, ensure_topics

PARTITIONS = 4
BATCH = 2000  # as examples/kafka.yaml: a transaction per 2,000 records amortises its round trips
HOSTS = 1024  # many keys, so the 4 partitions of logs.raw get nearly equal shares
GROUP = "bench-factory"
POLL = 0.05  # seconds between reads of the group's committed offsets
RUN_TIMEOUT = 900.0
TICK = os.sysconf("SC_CLK_TCK")


def config_text(tmp: Path, bootstrap: str, replication: int, port: int = 0, http: int = 0) -> str:
    """pipeline.py's node (sce over syslog TCP -> USER_OP) on a Kafka bus.

    Without ``port`` there are no sources and no API: a config for bare factory workers.
    """
    data: dict[str, Any] = yaml.safe_load(
        LATENCY_CONFIG.format(data=tmp / "data", port=port, http=http)
    )
    data["bus"] = {
        "type": "kafka",
        "partitions": PARTITIONS,
        "kafka": {
            "bootstrap.servers": bootstrap,
            "replication.factor": replication,
            "min.insync.replicas": 2 if replication >= 3 else 1,
        },
    }
    data["factory"] = {"group": GROUP, "batch_size": BATCH}
    if not port:
        del data["sources"], data["http"]
    return yaml.safe_dump(data, sort_keys=False)


# -- CPU accounting (from /proc: no third-party dependency) -------------------------------------
def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of one process (all its threads) so far; 0 once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()  # fields from the 3rd (state) on
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_busy() -> float:
    """CPU seconds every core of the machine has spent not idle since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / TICK  # guest time is already inside user


@dataclass
class CpuMark:
    """CPU counters at one instant, for the deltas over the measured window."""

    workers: list[float]
    broker: float
    poller: float
    machine: float

    @classmethod
    def take(cls, workers: list[subprocess.Popen[bytes]], broker: int) -> CpuMark:
        return cls(
            [proc_cpu(p.pid) for p in workers],
            proc_cpu(broker),
            time.process_time(),
            machine_busy(),
        )


# -- throughput ---------------------------------------------------------------------------------
def preload(bus: KafkaBus, records: int) -> None:
    producer = bus.producer()
    for i in range(records):
        host = f"cn{i % HOSTS:04d}"
        line = (
            f"2026-11-22 00:10:42|{host}|usr{i % 997}|10.{i % 200}.{i % 250}.7|QUERY_RESOURCE|"
            f"cpus={i % 64} app=app{i % 13} n={i}"
        )
        producer.produce(RAW, encode_record(make_record("sce", host, line)), host.encode())
    producer.flush()
    producer.close()


def start_worker(cfg: Path, worker_id: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "logfactory", "factory", "-c", str(cfg),
             "--worker-id", str(worker_id)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for proc in workers:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in workers:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@dataclass
class Watch:
    """What :func:`watch_commits` saw: (time, committed records) samples from the first commit
    until all are in, and the CPU counters at both ends of that window."""

    samples: list[tuple[float, int]]
    first: CpuMark
    last: CpuMark


def watch_commits(
    bus: KafkaBus, total: int, workers: list[subprocess.Popen[bytes]], logs: list[Path], broker: int
) -> Watch:
    samples: list[tuple[float, int]] = []
    first: CpuMark | None = None
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        done = sum(bus.committed(GROUP, RAW).values())
        if done:
            samples.append((time.perf_counter(), done))
            if first is None:
                first = CpuMark.take(workers, broker)
            if done >= total:
                return Watch(samples, first, CpuMark.take(workers, broker))
        for proc, log in zip(workers, logs, strict=True):
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"worker exited with {proc.returncode}:\n{tail}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {done} of {total} records committed in {RUN_TIMEOUT} s")
        time.sleep(POLL)


def steady_rate(samples: list[tuple[float, int]], total: int) -> float:
    """Records/s between 10 % and 90 % committed: without the ramp (a rebalance when the second
    worker joins) and the tail (one worker idle while the other finishes its partitions)."""
    lo = next(s for s in samples if s[1] >= 0.1 * total)
    hi = next(s for s in samples if s[1] >= 0.9 * total)
    return (hi[1] - lo[1]) / (hi[0] - lo[0]) if hi[0] > lo[0] else float("nan")


def count_events(bus: KafkaBus, topic: str) -> Counter[str]:
    """Event ids on ``topic`` as a read_committed reader sees them, with their multiplicity."""
    consumer = bus.consumer(None, [topic], "earliest")
    ends = {(topic, p): hi for p, (_lo, hi) in bus.watermarks(topic).items()}
    ids: Counter[str] = Counter()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        position = consumer.position()
        if all(position.get(tp, 0) >= hi for tp, hi in ends.items()):
            break
        for msg in consumer.poll(5000, timeout=0.5):
            ids[decode_event(msg.value).header.id] += 1
    consumer.close()
    return ids


def throughput_run(records: int, workers: int) -> dict[str, Any]:
    """One measured run on a broker of its own; see the module doc."""
    with tempfile.TemporaryDirectory(prefix="bench-kafka") as name:
        tmp = Path(name)
        cluster = launch(tmp / "kafka", 1)
        try:
            broker = cluster.nodes[0].proc
            assert broker is not None
            cfg = tmp / "factory.yaml"
            cfg.write_text(config_text(tmp, cluster.bootstrap, replication=1))
            config = load_config(cfg)
            bus = KafkaBus.from_config(config.bus, client_id="bench")
            ensure_topics(bus, config)
            preload(bus, records)
            marks = bus.watermarks(RAW)
            total = sum(hi - lo for lo, hi in marks.values())
            logs = [tmp / f"worker{i}.log" for i in range(workers)]
            load = os.getloadavg()[0]
            procs = [start_worker(cfg, i, log) for i, log in enumerate(logs)]
            try:
                watch = watch_commits(bus, total, procs, logs, broker.pid)
            finally:
                stop_workers(procs)
            ids = count_events(bus, topic_for_type("USER_OP"))
            bus.close()
        finally:
            cluster.stop_all()
    return {
        **run_result(workers, total, marks, watch, ids),
        "load_average_1m_before": round(load, 2),
    }


def run_result(
    workers: int,
    total: int,
    marks: dict[int, tuple[int, int]],
    watch: Watch,
    ids: Counter[str],
) -> dict[str, Any]:
    (t0, c0), (t1, _c1) = watch.samples[0], watch.samples[-1]
    elapsed = t1 - t0
    first, last = watch.first, watch.last
    worker_cpu = [round(b - a, 2) for a, b in zip(first.workers, last.workers, strict=True)]
    machine = last.machine - first.machine
    cores = os.cpu_count() or 1
    return {
        "workers": workers,
        "records": total,
        "raw_partition_sizes": [hi - lo for _p, (lo, hi) in sorted(marks.items())],
        "committed_at_first_sample": c0,
        "seconds": round(elapsed, 3),
        "records_per_s": round((total - c0) / elapsed, 1) if elapsed > 0 else float("nan"),
        "steady_records_per_s_10_to_90_pct": round(steady_rate(watch.samples, total), 1),
        "worker_cpu_seconds": worker_cpu,
        "worker_cpu_per_record_us": round(sum(worker_cpu) / max(1, total - c0) * 1e6, 1),
        "broker_cpu_seconds": round(last.broker - first.broker, 2),
        "poller_cpu_seconds": round(last.poller - first.poller, 2),
        "machine_busy_cpu_seconds": round(machine, 2),
        "machine_busy_fraction": round(machine / (cores * elapsed), 3) if elapsed > 0 else 0.0,
        "other_cpu_seconds": round(
            machine - sum(worker_cpu) - (last.broker - first.broker) - (last.poller - first.poller),
            2,
        ),
        "exactly_once": {
            "events_read_committed": sum(ids.values()),
            "distinct_event_ids": len(ids),
            "duplicates": sum(n - 1 for n in ids.values() if n > 1),
            "ok": sum(ids.values()) == total and len(ids) == total,
        },
    }


def throughput(records: int) -> dict[str, Any]:
    runs = [throughput_run(records, n) for n in (1, 2)]
    one, two = (r["records_per_s"] for r in runs)
    s_one, s_two = (r["steady_records_per_s_10_to_90_pct"] for r in runs)
    return {
        "throughput_runs": runs,
        "throughput_1_worker_records_per_s": one,
        "throughput_2_workers_records_per_s": two,
        "scaling_ratio": round(two / one, 3),
        "steady_scaling_ratio": round(s_two / s_one, 3),
        "exactly_once_ok": all(r["exactly_once"]["ok"] for r in runs),
    }


# -- latency ------------------------------------------------------------------------------------
def latency(rate: int, seconds: int, warmup: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-kafka3") as name:
        tmp = Path(name)
        cluster = launch(tmp / "kafka", 3)
        try:
            port, http = free_port(), free_port()
            cfg = tmp / "node.yaml"
            cfg.write_text(config_text(tmp, cluster.bootstrap, 3, port=port, http=http))
            config = load_config(cfg)
            pids = [n.proc.pid for n in cluster.nodes if n.proc is not None]
            load = os.getloadavg()[0]
            brokers0, busy0, t0 = sum(map(proc_cpu, pids)), machine_busy(), time.perf_counter()
            lat = node_latencies(cfg, port, http, rate, seconds, warmup=warmup)
            window = time.perf_counter() - t0
            brokers, busy = sum(map(proc_cpu, pids)) - brokers0, machine_busy() - busy0
        finally:
            cluster.stop_all()
    return {
        **latency_summary(lat, rate, seconds),
        "latency_warmup_lines": warmup,
        "latency_first_10s_p99_ms": round(percentile(sorted(lat[: rate * 10]), 0.99), 2),
        "latency_cluster": _cluster_settings(config, cluster.size),
        "latency_load_average_1m_before": round(load, 2),
        "latency_window_seconds": round(window, 1),
        "latency_brokers_cpu_seconds": round(brokers, 1),
        "latency_machine_busy_cpu_seconds": round(busy, 1),
        "latency_machine_busy_fraction": round(busy / ((os.cpu_count() or 1) * window), 3),
    }


def _cluster_settings(config: Config, nodes: int) -> dict[str, Any]:
    """What the latency run really used, read back from the bus's own client settings."""
    settings = split_settings(config.bus.kafka)
    producer = producer_config(settings, "bench")
    return {
        "nodes": nodes,
        "partitions": config.bus.partitions,
        "replication_factor": settings.replication_factor,
        "min_insync_replicas": settings.min_insync_replicas,
        "acks": producer["acks"],
        "linger_ms": producer["linger.ms"],
    }


METHOD = (
    "Throughput: per run a fresh 1-node KRaft broker, logs.raw with {partitions} partitions "
    "preloaded with N sce records keyed by {hosts} hosts before any worker starts; then 1 (or 2) "
    "`logfactory factory` processes; timed from the first committed offset of the group (polled "
    "every {poll} ms, so start-up and group join are excluded) until the committed offsets reach "
    "the end of logs.raw. records_per_s counts the records committed inside that window; the "
    "steady rate is between 10 % and 90 % committed. CPU seconds are /proc deltas over the same "
    "window; other_cpu_seconds is what the rest of the machine (other engineers' tests) used. "
    "Exactly-once: a read_committed consumer counts events.USER_OP ids afterwards. Latency: a "
    "3-node cluster (RF 3, min ISR 2, acks=all), `logfactory run` with a syslog TCP source fed "
    "{rate} lines/s for {seconds} s; a subscriber (read_committed) measures now - "
    "header.received per USER_OP event. The machine has {cores} cores shared by broker(s), "
    "workers, this harness and other engineers' test runs."
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=2000, help="untimed lines sent first")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {}
    result.update(throughput(args.records))
    result.update(latency(args.rate, args.seconds, args.warmup))
    result["targets"] = {"scaling_ratio": 1.8, "latency_p99_ms": 25}
    result["method"] = METHOD.format(
        partitions=PARTITIONS,
        hosts=HOSTS,
        poll=int(POLL * 1000),
        rate=args.rate,
        seconds=args.seconds,
        cores=os.cpu_count(),
    )
    write_result("kafka", result)


if __name__ == "__main__":
    main()
