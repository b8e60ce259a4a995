"""The API under a real uvicorn server on 127.0.0.1: SSE over a socket, ingest, disconnects.

Every request carries a token of the context's access store: a viewer's to read and subscribe,
an ingest token to post. The subscriber caps are per client address: each client address of a
test has a token of its own, so a limit per credential cannot be what the caps tests see.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from tests.helpers.clients import bearer
from tests.helpers.waiting import wait_for

from logfactory.access import Role
from logfactory.access.store import AccessStore
from logfactory.api import NodeContext, create_app
from logfactory.bus.base import TopicSpec
from logfactory.bus.local import LocalBus
from logfactory.config import Config, parse_config
from logfactory.event import Event, Header, encode_event
from logfactory.record import decode_record
from logfactory.stats import StatsRegistry

pytestmark = pytest.mark.integration


@contextmanager
def serve(tmp_path: Path, bus: LocalBus, config: Config) -> Iterator[tuple[str, NodeContext]]:
    """The API of ``config`` under uvicorn on a free 127.0.0.1 port, in a thread."""
    producer = bus.producer()
    ctx = NodeContext(
        config=config,
        bus=bus,
        producer=producer,
        registry=StatsRegistry("node"),
        stats_dir=tmp_path / "stats",
        started=time.time(),
        access=AccessStore.in_dir(tmp_path / "access"),
        keepalive_s=0.2,
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    uv_config = uvicorn.Config(
        create_app(ctx), log_level="warning", access_log=False, lifespan="off"
    )
    srv = uvicorn.Server(uv_config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_for(lambda: srv.started, what="uvicorn to start")
    yield f"http://127.0.0.1:{port}", ctx
    srv.should_exit = True
    thread.join(timeout=10)
    sock.close()
    producer.close()
    ctx.access.close()


@pytest.fixture
def server(tmp_path: Path, local_bus: LocalBus) -> Iterator[tuple[str, NodeContext]]:
    with serve(tmp_path, local_bus, Config()) as out:
        yield out


def test_sse_over_a_socket_and_disconnect_releases_the_stream(
    server: tuple[str, NodeContext], local_bus: LocalBus
) -> None:
    base, ctx = server
    local_bus.ensure_topic(TopicSpec("events.ALERT", 2))
    with httpx.Client(base_url=base, timeout=10, headers=bearer(ctx, Role.VIEWER)) as client:
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
    base, ctx = server
    ingest = bearer(ctx, Role.INGEST)
    r = httpx.post(
        f"{base}/api/v1/ingest?source=t", content=b"hello\nworld\n", headers=ingest, timeout=10
    )
    assert r.json()["accepted"] == 2
    assert r.json()["errors"] == []
    consumer = local_bus.consumer(None, ["logs.raw"], "earliest")
    records = [decode_record(m.value) for m in consumer.poll(10, 1.0)]
    consumer.close()
    assert sorted(rec.line for rec in records) == ["hello", "world"]
    assert {rec.host for rec in records} == {"127.0.0.1"}
    health = httpx.get(f"{base}/api/v1/health", timeout=10)
    assert health.status_code == 200, health.text


# -- SSE admission and cost (issue 13) ----------------------------------------------------------
def subscribe(ctx: NodeContext) -> bytes:
    """A subscription request with a new viewer's token: one per client address."""
    auth = bearer(ctx, Role.VIEWER)["Authorization"]
    return (
        b"GET /api/v1/subscribe?types=ALERT HTTP/1.1\r\nHost: localhost\r\n"
        b"Authorization: " + auth.encode() + b"\r\n\r\n"
    )


@pytest.fixture
def connect() -> Iterator[Callable[[str, str], socket.socket]]:
    """Connections to the API from a given source address (any of 127.0.0.0/8 is this
    machine), all closed at the end of the test."""
    opened: list[socket.socket] = []

    def open_one(base: str, source: str) -> socket.socket:
        s = socket.socket()
        opened.append(s)
        s.settimeout(10)
        s.bind((source, 0))
        s.connect(("127.0.0.1", int(base.rsplit(":", 1)[1])))
        return s

    yield open_one
    for s in opened:
        s.close()


def _recv(s: socket.socket) -> bytes:
    """The next bytes of a stream (the socket's timeout bounds the wait); fails at its end,
    which a loop reading until some text arrives would otherwise spin on forever."""
    chunk = s.recv(65536)
    assert chunk, "the server closed the stream"
    return chunk


def read_head(s: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and whatever body came with them."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        assert chunk, f"connection closed before the response head: {buf!r}"
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines)}
    return int(status_line.split()[1]), headers, rest


def subscribers(base: str, auth: dict[str, str]) -> int:
    stats = httpx.get(f"{base}/api/v1/stats", headers=auth, timeout=10).json()
    return int(stats["api"]["subscribers"])


def capped(tmp_path: Path, bus: LocalBus, total: int, per_client: int) -> Config:
    bus.ensure_topic(TopicSpec("events.ALERT", 2))
    text = f"http: {{max_subscribers: {total}, max_subscribers_per_client: {per_client}}}\n"
    return parse_config(text, str(tmp_path / "node.yaml"))


def test_a_burst_of_subscribers_admits_exactly_the_cap(
    tmp_path: Path, local_bus: LocalBus, connect: Callable[[str, str], socket.socket]
) -> None:
    # the cap was checked before a stream was counted: a burst got 111 of 200 past a cap of 64
    with serve(tmp_path, local_bus, capped(tmp_path, local_bus, 4, 2)) as (base, ctx):
        auth = bearer(ctx, Role.VIEWER)
        socks = [connect(base, f"127.0.0.{2 + i}") for i in range(24)]  # one per client
        requests = [subscribe(ctx) for _ in socks]
        for s, request in zip(socks, requests, strict=True):  # all out before any answer is read
            s.sendall(request)
        heads = [read_head(s) for s in socks]
        statuses = [status for status, _, _ in heads]
        assert statuses.count(200) == 4, statuses
        assert statuses.count(503) == 20, statuses
        assert all(h["retry-after"].isdigit() for st, h, _ in heads if st == 503)
        assert subscribers(base, auth) == 4
        for s in socks:
            s.close()
        wait_for(lambda: subscribers(base, auth) == 0, what="every slot to be given back")


def test_one_client_gets_its_share_and_no_more(
    tmp_path: Path, local_bus: LocalBus, connect: Callable[[str, str], socket.socket]
) -> None:
    with serve(tmp_path, local_bus, capped(tmp_path, local_bus, 4, 2)) as (base, ctx):
        auth = bearer(ctx, Role.VIEWER)
        request = subscribe(ctx)  # this client's token
        mine = [connect(base, "127.0.0.1") for _ in range(3)]
        for s in mine:
            s.sendall(request)
        # which of the three is refused is the server's to pick (the credential check of each
        # may yield to a worker thread): two streams and one refusal, in any order
        heads = [read_head(s) for s in mine]
        assert sorted(status for status, _, _ in heads) == [200, 200, 429]
        [(_, headers, body)] = [head for head in heads if head[0] == 429]
        assert headers["retry-after"].isdigit()
        assert b"per client" in body
        admitted = [s for s, head in zip(mine, heads, strict=True) if head[0] == 200]
        other = connect(base, "127.0.0.2")  # another client still gets in
        other.sendall(subscribe(ctx))
        assert read_head(other)[0] == 200
        admitted[0].close()  # a stream that ends gives its place back to its client
        wait_for(lambda: subscribers(base, auth) == 2, what="the closed stream's slot")
        again = connect(base, "127.0.0.1")
        again.sendall(request)
        assert read_head(again)[0] == 200
        for s in [*mine, other, again]:
            s.close()
        wait_for(lambda: subscribers(base, auth) == 0, what="every slot to be given back")


def _sse_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("sse-")}


def test_idle_streams_hold_no_thread_and_wake_on_their_events(
    server: tuple[str, NodeContext],
    local_bus: LocalBus,
    connect: Callable[[str, str], socket.socket],
) -> None:
    base, ctx = server
    local_bus.ensure_topic(TopicSpec("events.ALERT", 2))
    local_bus.ensure_topic(TopicSpec("events.USER_OP", 2))
    before = _sse_threads()  # other tests' servers may have left theirs
    socks = [connect(base, "127.0.0.1") for _ in range(8)]
    request = subscribe(ctx)
    got = {}
    for s in socks:
        s.sendall(request)
        status, _, got[s] = read_head(s)
        assert status == 200
    for s in socks:
        while b"retry: " not in got[s]:  # subscribed: positioned at the end of the topic
            got[s] += _recv(s)
    # each stream used to poll in a thread of its own, even with nothing to read
    new_threads = sorted(t.name for t in _sse_threads() - before)
    assert len(new_threads) <= 2, new_threads
    producer = local_bus.producer()
    producer.produce("events.USER_OP", b"{}", b"h")  # another topic: wakes nobody, sent nowhere
    for i in range(3):
        event = Event(header=Header(id=f"w{i}", time="t", type="ALERT"))
        producer.produce("events.ALERT", encode_event(event), b"h")
    producer.flush()
    producer.close()
    for s in socks:
        while got[s].count(b"data: ") < 3:
            got[s] += _recv(s)
        assert b"w2" in got[s]
        assert b"event: USER_OP" not in got[s]
        s.close()
    auth = bearer(ctx, Role.VIEWER)
    wait_for(lambda: subscribers(base, auth) == 0, what="every slot to be given back")
