"""Health, stats and Prometheus metrics over real stats files and a real local bus."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.helpers.clients import TestClient, api_client

from logfactory.access import Role
from logfactory.access.store import AccessStore
from logfactory.api import NodeContext
from logfactory.api.metrics import ProcessInfo, merge_snapshots
from logfactory.api.routes.health import process_problems
from logfactory.bus.base import BusError, TopicSpec
from logfactory.bus.local import LocalBus
from logfactory.config import Config
from logfactory.stats import StatsRegistry, StatsWriter


@pytest.fixture
def ctx(tmp_path: Path, local_bus: LocalBus) -> Iterator[NodeContext]:
    producer = local_bus.producer()
    node = StatsRegistry("node")
    node.add_many("source:syslog", received=5, bytes=500)
    yield NodeContext(
        config=Config(),
        bus=local_bus,
        producer=producer,
        registry=node,
        stats_dir=tmp_path / "stats",
        started=time.time() - 10,
        access=AccessStore.in_dir(tmp_path / "access"),
    )
    producer.close()


@pytest.fixture
def client(ctx: NodeContext) -> Iterator[TestClient]:
    with api_client(ctx, role=Role.VIEWER) as c:  # reading needs no more than a viewer
        yield c


def write_factory(stats_dir: Path, name: str, decode: int, **snap_overrides: object) -> None:
    reg = StatsRegistry(name)
    reg.add_many("stage:decode", received=decode, sent=decode - 1, errors=1)
    reg.add("events:ALERT", "sent", 3)
    reg.add("deadletter", "sent", 1)
    reg.add("custom", "things", 7)
    stats_dir.mkdir(parents=True, exist_ok=True)
    if not snap_overrides:
        StatsWriter(reg, stats_dir).write_now()
        return
    snap = reg.snapshot() | snap_overrides
    (stats_dir / f"{name}.json").write_text(json.dumps(snap), encoding="utf-8")


def dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(proc.stdout)


def fill_bus(bus: LocalBus) -> None:
    bus.ensure_topic(TopicSpec("logs.raw", 2))
    producer = bus.producer()
    for i in range(10):
        producer.produce("logs.raw", b"{}", f"h{i}".encode())
    producer.flush()
    producer.close()
    consumer = bus.consumer("factory", ["logs.raw"], "earliest")
    got = 0
    deadline = time.monotonic() + 30
    while got < 4:
        assert time.monotonic() < deadline, f"read {got} of 4 messages"
        got += len(consumer.poll(4 - got, 1.0))
    consumer.commit()
    consumer.close()


def test_stats_sum_processes_and_show_bus_and_processes(
    ctx: NodeContext, client: TestClient, local_bus: LocalBus
) -> None:
    write_factory(ctx.stats_dir, "factory-1", decode=10)
    write_factory(ctx.stats_dir, "factory-2", decode=20)
    fill_bus(local_bus)
    body = client.get("/api/v1/stats").json()
    assert body["stages"]["decode"] == {"received": 30, "sent": 28, "dropped": 0, "errors": 2}
    assert list(body["stages"])[:6] == ["intake", "sort", "decode", "filter", "process", "package"]
    assert body["stages"]["intake"]["received"] == 0
    assert body["sources"]["syslog"] == {"received": 5, "bytes": 500, "rejected": 0}
    assert body["events"] == {"ALERT": 6}
    assert body["deadletter"] == 2
    refusals = {"refused_host": 0, "refused_cors": 0, "refused_content_type": 0}  # api.safety
    assert body["other"] == {"custom": {"things": 14}, "api": refusals}
    assert body["bus"]["topics"]["logs.raw"] == {"partitions": 2, "messages": 10, "retained": 10}
    assert body["bus"]["lag"] == {"factory": {"logs.raw": 6}}
    names = [(p["name"], p["alive"]) for p in body["processes"]]
    assert names == [("factory-1", True), ("factory-2", True), ("node", True)]
    assert body["uptime_s"] >= 10
    assert body["api"] == {"subscribers": 0}


def test_health_ok_then_degraded_for_stale_and_dead_processes(
    ctx: NodeContext, client: TestClient
) -> None:
    write_factory(ctx.stats_dir, "factory-1", decode=1)
    ok = client.get("/api/v1/health")
    assert ok.status_code == 200
    assert ok.json()["status"] == "ok"
    write_factory(ctx.stats_dir, "collector", decode=1, written=time.time() - 30)
    write_factory(ctx.stats_dir, "worker-2", decode=1, pid=dead_pid(), written=time.time() - 2)
    bad = client.get("/api/v1/health")
    assert bad.status_code == 503
    body = bad.json()
    assert body["status"] == "degraded"
    assert len(body["problems"]) == 2
    assert "collector" in body["problems"][0]
    assert "not reported for 30" in body["problems"][0]
    assert "worker-2" in body["problems"][1]
    assert "not running" in body["problems"][1]


def test_health_needs_expected_roles_and_a_bus(
    ctx: NodeContext, client: TestClient, local_bus: LocalBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx.expected_processes = ("factory",)
    r = client.get("/api/v1/health")
    assert r.status_code == 503
    assert "no factory process" in r.json()["problems"][0]
    write_factory(ctx.stats_dir, f"factory-{os.getpid()}", decode=1)
    assert client.get("/api/v1/health").status_code == 200

    def broken() -> dict[str, int]:
        raise BusError("database is locked")

    monkeypatch.setattr(local_bus, "topics", broken)
    r = client.get("/api/v1/health")
    assert r.status_code == 503
    assert r.json()["problems"] == ["bus: BusError: database is locked"]
    assert client.get("/api/v1/stats").json()["bus"] == {"error": "the bus did not answer"}


def test_metrics_are_prometheus_text_with_merged_numbers(
    ctx: NodeContext, client: TestClient, local_bus: LocalBus
) -> None:
    write_factory(ctx.stats_dir, "factory-1", decode=10)
    write_factory(ctx.stats_dir, "factory-2", decode=20)
    fill_bus(local_bus)
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }

    def sample(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert sample("logfactory_stage_records_total", stage="decode", outcome="received") == 30
    assert sample("logfactory_source_records_total", source="syslog", outcome="received") == 5
    assert sample("logfactory_source_bytes_total", source="syslog") == 500
    assert sample("logfactory_events_total", type="ALERT") == 6
    assert sample("logfactory_deadletter_total") == 2
    assert sample("logfactory_bus_lag", group="factory", topic="logs.raw") == 6
    assert sample("logfactory_bus_messages_total", topic="logs.raw") == 10
    assert sample("logfactory_process_up", process="factory-1") == 1
    assert sample("logfactory_uptime_seconds") >= 10


def test_sources_report_dropped_lag_and_the_spool_in_stats_and_metrics(
    ctx: NodeContext, client: TestClient
) -> None:
    collector = StatsRegistry("collect-1")
    collector.add_many("source:udp", received=90, bytes=900, dropped=10)
    collector.gauge("source:udp:lag_records", 4)
    collector.gauge("source:app-logs:lag_bytes", 12_345)
    collector.add_many("spool", spooled=7, resent=5)
    collector.add("spool", "quarantined")
    collector.gauge("spool.records", 2)
    collector.gauge("spool.bytes", 300)
    ctx.stats_dir.mkdir(parents=True, exist_ok=True)
    StatsWriter(collector, ctx.stats_dir).write_now()

    sources = client.get("/api/v1/stats").json()["sources"]
    assert sources["udp"] == {
        "received": 90, "bytes": 900, "rejected": 0, "dropped": 10, "lag_records": 4,
    }  # fmt: skip
    assert sources["app-logs"]["lag_bytes"] == 12_345
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for s in family.samples
    }
    assert (
        samples[("logfactory_source_records_total", (("outcome", "dropped"), ("source", "udp")))]
        == 10
    )
    assert samples[("logfactory_source_lag", (("source", "udp"), ("unit", "records")))] == 4
    assert samples[("logfactory_source_lag", (("source", "app-logs"), ("unit", "bytes")))] == 12_345
    assert samples[("logfactory_spool_records_total", (("outcome", "spooled"),))] == 7
    assert samples[("logfactory_spool_records_total", (("outcome", "resent"),))] == 5
    assert samples[("logfactory_spool_records_total", (("outcome", "quarantined"),))] == 1
    assert samples[("logfactory_spool_held_records", ())] == 2
    assert samples[("logfactory_spool_held_bytes", ())] == 300


def proc(
    name: str,
    *,
    alive: bool = True,
    age: float = 0.5,
    started: float = 100.0,
    written: float = 200.0,
) -> ProcessInfo:
    return ProcessInfo(name, 1, alive, age, started, written)


def test_a_restarted_process_forgives_its_dead_predecessor() -> None:
    dead = proc("factory-1", alive=False, age=50, written=150.0)
    restarted = proc("factory-2", started=151.0)
    assert process_problems([dead, restarted], own="node") == []
    # a sibling that was already running when the other died does not hide the death
    sibling = proc("factory-3", started=100.0)
    problems = process_problems([dead, sibling], own="node")
    assert len(problems) == 1
    assert "factory-1" in problems[0]


def test_own_process_is_never_stale() -> None:
    assert process_problems([proc("node", alive=False, age=99)], own="node") == []


def test_merge_ignores_junk_without_failing() -> None:
    view = merge_snapshots(
        [
            {"process": "x", "counters": "nope", "pid": "?", "written": None},
            {
                "process": "y",
                "counters": {
                    "stage:decode": {"received": "a", "sent": 2},
                    "events:": 3,
                    "events:ALERT": {"sent": "many"},
                    "deadletter": {"sent": [1]},
                    "source:s": {"bytes": 1.5},
                },
            },
        ],
        now=0.0,
    )
    assert view.stages["decode"]["sent"] == 2
    assert view.stages["decode"]["received"] == 0
    assert view.sources["s"]["bytes"] == 1
    assert view.events == {"ALERT": 0}
    assert view.deadletter == 0
    assert [p.name for p in view.processes] == ["x", "y"]


def test_problems_a_live_process_reports_reach_health() -> None:
    registry = StatsRegistry("factory-7")
    registry.problem("bus", "brokers unreachable since 03:00:00Z")
    registry.problem("gone", "soon cleared")
    registry.problem("gone", None)
    snap = registry.snapshot()
    snap["alive"] = True
    view = merge_snapshots([snap], now=snap["written"])
    assert view.processes[0].problems == {"bus": "brokers unreachable since 03:00:00Z"}
    assert process_problems(view.processes, own="node") == [
        "factory-7: brokers unreachable since 03:00:00Z"
    ]
    # a dead process's last report is not repeated as a current problem
    dead = proc("factory-8", alive=False, age=50)
    dead.problems["bus"] = "stale"
    assert not any("stale" in p for p in process_problems([dead], own="node"))
