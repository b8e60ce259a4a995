"""The raw line source: TCP, UDP and TLS lines through the agent onto the real local bus."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from tests.helpers.configs import source_as
from tests.helpers.sources import agent_around, make_config, read_until

from logfactory.bus.local import LocalBus
from logfactory.collect.agent import Agent
from logfactory.collect.sources.context import SourceContext
from logfactory.collect.sources.raw import RawSource
from logfactory.config import RawSourceConfig, SourceConfig
from logfactory.record import Record
from logfactory.stats import StatsRegistry

Scenario = Callable[[RawSource], Awaitable[None]]


def raw_config(**kw: Any) -> RawSourceConfig:
    base: dict[str, Any] = {"type": "raw", "name": "raw", "listen": "127.0.0.1:0"}
    base.update(kw)
    return source_as(RawSourceConfig, **base)


def run(tmp_path: Path, bus: LocalBus, sc: SourceConfig, scenario: Scenario) -> StatsRegistry:
    """Run an agent with one raw source around ``scenario``; its registry afterwards."""
    registry = StatsRegistry("t")

    async def around(_agent: Agent, src: RawSource) -> None:
        await scenario(src)

    config = make_config(tmp_path, sc)
    agent_around(config, bus, RawSource, around, registry=registry, partitions=2)
    return registry


def counters(registry: StatsRegistry) -> dict[str, int]:
    return dict(registry.snapshot()["counters"].get("source:raw", {}))


def test_tcp_lines_are_raw_with_the_peer_as_host(tmp_path: Path, local_bus: LocalBus) -> None:
    got: list[Record] = []
    peer: list[str] = []

    async def scenario(src: RawSource) -> None:
        assert src.addresses() == [f"raw tcp 127.0.0.1:{src.bound['tcp'][1]}"]
        _, w = await asyncio.open_connection(*src.bound["tcp"])
        host, port = w.get_extra_info("sockname")[:2]
        peer.append(f"{host}:{port}")
        # a line that looks octet-counted and one that looks like syslog stay as they are
        w.write(b"12 <13>not a count\r\n\n<13>Nov 22 00:15:51 web01 app: raw\nlast, no LF")
        w.write(b"\n" + b"y" * 100 + b"\nafter the long one\n")
        await w.drain()
        w.close()
        await w.wait_closed()
        got.extend(await read_until(local_bus, timeout=15.0, n=4))

    registry = run(tmp_path, local_bus, raw_config(protocols=["tcp"], max_frame_bytes=64), scenario)
    assert [r.line for r in got] == [
        "12 <13>not a count",
        "<13>Nov 22 00:15:51 web01 app: raw",
        "last, no LF",
        "after the long one",
    ]
    assert {r.host for r in got} == {"127.0.0.1"}
    assert {r.source for r in got} == {"raw"}
    assert all(r.meta == {"peer": peer[0], "transport": "tcp"} for r in got)
    assert counters(registry)["rejected"] == 1
    assert counters(registry)["received"] == 4


def test_udp_datagrams_carry_lines(tmp_path: Path, local_bus: LocalBus) -> None:
    got: list[Record] = []

    async def scenario(src: RawSource) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.sendto(b"one\ntwo\r\n\nthree", src.bound["udp"])
            sock.sendto(b"x" * 40 + b"\nfour\x00five\n", src.bound["udp"])
            sock.sendto(b"\xff\xfe bytes", src.bound["udp"])
        finally:
            sock.close()
        got.extend(await read_until(local_bus, timeout=15.0, n=6))

    registry = run(tmp_path, local_bus, raw_config(protocols=["udp"], max_frame_bytes=32), scenario)
    assert [r.line for r in got] == ["one", "two", "three", "four", "five", "\ufffd\ufffd bytes"]
    assert got[-1].raw == b"\xff\xfe bytes"
    assert {r.meta["transport"] for r in got} == {"udp"}
    assert counters(registry)["rejected"] == 1


def test_tls_lines(tmp_path: Path, local_bus: LocalBus) -> None:
    got: list[Record] = []

    async def scenario(src: RawSource) -> None:
        assert src.tls_cert is not None
        assert "tls" in src.bound
        ctx = ssl.create_default_context(cafile=str(src.tls_cert))
        _, w = await asyncio.open_connection(
            *src.bound["tls"], ssl=ctx, server_hostname="localhost"
        )
        w.write(b"".join(b"secure %d\n" % i for i in range(500)))
        await w.drain()
        w.close()
        await w.wait_closed()
        got.extend(await read_until(local_bus, timeout=15.0, n=500))

    cfg = raw_config(listen=None, tls_listen="127.0.0.1:0", tag="app")
    run(tmp_path, local_bus, cfg, scenario)
    assert [r.line for r in got] == [f"secure {i}" for i in range(500)]
    assert {(r.source, r.host, r.meta["transport"]) for r in got} == {("app", "127.0.0.1", "tls")}


def test_many_concurrent_connections(tmp_path: Path, local_bus: LocalBus) -> None:
    conns, lines = 100, 50
    got: list[Record] = []

    async def one(src: RawSource, c: int) -> None:
        _, w = await asyncio.open_connection(*src.bound["tcp"])
        for i in range(lines):
            w.write(b"conn %d line %d\n" % (c, i))
            if i % 10 == 0:
                await w.drain()
        await w.drain()
        w.close()
        await w.wait_closed()

    async def scenario(src: RawSource) -> None:
        await asyncio.gather(*(one(src, c) for c in range(conns)))
        got.extend(await read_until(local_bus, timeout=15.0, n=conns * lines))

    run(tmp_path, local_bus, raw_config(protocols=["tcp"]), scenario)
    assert len(got) == conns * lines
    by_conn: dict[str, list[str]] = {}
    for r in got:
        by_conn.setdefault(r.meta["peer"], []).append(r.line)
    assert len(by_conn) == conns
    for seq in by_conn.values():  # each connection's lines complete and in order
        c = seq[0].split()[1]
        assert seq == [f"conn {c} line {i}" for i in range(lines)]


def test_garbage_never_breaks_the_listener(tmp_path: Path, local_bus: LocalBus) -> None:
    got: list[Record] = []

    async def scenario(src: RawSource) -> None:
        junk = bytes(range(256)) * 40
        _, w = await asyncio.open_connection(*src.bound["tcp"])
        w.write(junk)
        await w.drain()
        w.transport.abort()  # a peer that vanishes mid-line
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.sendto(junk[:60000], src.bound["udp"])
        sock.sendto(b"", src.bound["udp"])
        sock.close()
        _, w = await asyncio.open_connection(*src.bound["tcp"])
        w.write(b"still alive\n")
        await w.drain()
        w.close()
        await w.wait_closed()
        while not any(r.line == "still alive" for r in got):
            got.extend(await read_until(local_bus, timeout=15.0, n=1))

    run(tmp_path, local_bus, raw_config(max_frame_bytes=300), scenario)
    assert any(r.line == "still alive" for r in got)


def split_model(data: bytes, limit: int) -> tuple[list[bytes], int]:
    """What raw framing must produce: lines at LF/NUL, one CR before the end dropped, empty
    lines skipped, lines over ``limit`` rejected."""
    out: list[bytes] = []
    rejected = 0
    for part in data.replace(b"\0", b"\n").split(b"\n"):
        part = part.removesuffix(b"\r")
        if len(part) > limit:
            rejected += 1
        elif part:
            out.append(part)
    return out, rejected


@settings(deadline=None)  # the default 200 ms per example flakes on a loaded machine
@given(
    chunks=st.lists(st.binary(max_size=40) | st.sampled_from([b"\n", b"\r\n", b"\0", b"\r"])),
    limit=st.integers(1, 30),
)
@example(chunks=[b"abc\r", b"\n"], limit=3)  # the CR of a CRLF split from its LF at the limit
def test_stream_framing_matches_the_model_for_any_bytes(chunks: list[bytes], limit: int) -> None:
    src = RawSource(raw_config(max_frame_bytes=limit), SourceContext(Path("unused")))
    reasons: list[str] = []
    decoder = src.new_decoder(reasons.append)
    frames: list[bytes] = []
    for chunk in chunks:
        frames += decoder.feed(chunk)
    rest = decoder.close()
    if rest is not None:
        assert rest[1] is False  # newline framing: an unterminated last line is whole
        frames.append(rest[0])
    assert (frames, len(reasons)) == split_model(b"".join(chunks), limit)


@settings(deadline=None)  # the default 200 ms per example flakes on a loaded machine
@given(data=st.binary(max_size=300), limit=st.integers(1, 50))
def test_datagrams_match_the_model_for_any_bytes(data: bytes, limit: int) -> None:
    registry = StatsRegistry("t")
    src = RawSource(raw_config(max_frame_bytes=limit), SourceContext(Path("unused"), registry))
    src.on_datagrams([(data, ("10.0.0.9", 5000))], 1 << 17)
    lines, rejected = split_model(data, limit)
    assert [r.raw or r.line.encode() for r in src._queue] == lines
    assert {r.host for r in src._queue} <= {"10.0.0.9"}
    assert counters(registry).get("rejected", 0) == rejected
