"""The API under a real uvicorn server on 127.0.0.1: SSE over a socket, ingest, disconnects."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from tests.conftest import wait_for

from logfactory.bus.base import TopicSpec
from logfactory.bus.local import LocalBus
from logfactory.centre.api import NodeContext, create_app
from logfactory.config import Config
from logfactory.event import Event, Header, encode_event
from logfactory.record import decode_record
from logfactory.stats import StatsRegistry

pytestmark = pytest.mark.integration


@pytest.fixture
def server(tmp_path: Path, local_bus: LocalBus) -> Iterator[tuple[str, NodeContext]]:
    producer = local_bus.producer()
    ctx = NodeContext(
        config=Config(),
        bus=local_bus,
        producer=producer,
        registry=StatsRegistry("node"),
        stats_dir=tmp_path / "stats",
        started=time.time(),
        keepalive_s=0.2,
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(ctx), log_level="warning", access_log=False, lifespan="off")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_for(lambda: srv.started, what="uvicorn to start")
    yield f"http://127.0.0.1:{port}", ctx
    srv.should_exit = True
    thread.join(timeout=10)
    sock.close()
    producer.close()


def test_sse_over_a_socket_and_disconnect_releases_the_stream(
    server: tuple[str, NodeContext], local_bus: LocalBus
) -> None:
    base, _ = server
    local_bus.ensure_topic(TopicSpec("events.ALERT", 2))
    with httpx.Client(base_url=base, timeout=10) as client:
        with client.stream("GET", "/api/v1/subscribe", params={"types": "ALERT"}) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            lines = r.iter_lines()
            assert next(lines).startswith(": subscribed")
            assert client.get("/api/v1/stats").json()["api"]["subscribers"] == 1
            producer = local_bus.producer()
            for i in range(3):
                event = Event(header=Header(id=f"a{i}", time="t", type="ALERT"))
                producer.produce("events.ALERT", encode_event(event), b"h")
            producer.flush()
            producer.close()
            got: list[str] = []
            last_id = ""
            for line in lines:
                if line.startswith("id: "):
                    last_id = line[4:]
                if line.startswith("data: "):
                    got.append(json.loads(line[6:])["header"]["id"])
                    if len(got) == 3:
                        break
        assert got == ["a0", "a1", "a2"]  # one key: one partition, in order
        wait_for(
            lambda: client.get("/api/v1/stats").json()["api"]["subscribers"] == 0,
            what="the server to notice the disconnect",
        )
        resumed = client.get(
            "/api/v1/subscribe",
            params={"types": "ALERT", "idle": 0.3},
            headers={"Last-Event-ID": last_id},
        )
        assert "data:" not in resumed.text  # nothing after the last event seen


def test_ingest_over_a_socket_uses_the_peer_address(
    server: tuple[str, NodeContext], local_bus: LocalBus
) -> None:
    base, _ = server
    r = httpx.post(f"{base}/api/v1/ingest?source=t", content=b"hello\nworld\n", timeout=10)
    assert r.json()["accepted"] == 2 and r.json()["errors"] == []
    consumer = local_bus.consumer(None, ["logs.raw"], "earliest")
    records = [decode_record(m.value) for m in consumer.poll(10, 1.0)]
    consumer.close()
    assert sorted(rec.line for rec in records) == ["hello", "world"]
    assert {rec.host for rec in records} == {"127.0.0.1"}
    health = httpx.get(f"{base}/api/v1/health", timeout=10)
    assert health.status_code == 200, health.text
