"""The syslog listener with plain sockets, the Agent and the real local bus."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.helpers.sources import (
    LOOPS,
    LoopRunner,
    counters,
    make_config,
    read_until,
    run_agent,
    syslog_config,
)

from logfactory.bus.base import TopicSpec
from logfactory.bus.local import LocalBus
from logfactory.collect.agent import BACKLOG_HIGH, RAW_TOPIC, Agent
from logfactory.collect.sources.base import Emit, parse_listen
from logfactory.collect.sources.context import SourceContext
from logfactory.collect.sources.syslog import SyslogSource, header_host
from logfactory.record import Record, decode_record, make_record
from logfactory.stats import StatsRegistry


@pytest.mark.parametrize(
    ("frame", "host"),
    [
        (b"<13>1 2026-11-22T00:15:51.52+00:00 web01 app - - - hi", "web01"),
        (b"<13>1 - - app - - - no host", None),
        (b"<13>1 2:-x web01 app", "web01"),  # 5424 first, even where a year's '-' would be
        (b"<13>Nov 22 00:15:51 db02 sshd[1]: hi", "db02"),
        (b"<13>Nov  2 00:15:51 db03 sshd[1]: hi", "db03"),
        (b"<13>2026-11-22T00:15:51.521096+00:00 relay1 tag: hi", "relay1"),
        (b"<13>Nov 22 00:15:51 sshd[42]: local, no host", None),
        (b"<13>Nov 22 00:15:51 cron: local, no host", None),
        (b"plain text", None),
        (b"<13>", None),
        (b"", None),
    ],
)
def test_header_host(frame: bytes, host: str | None) -> None:
    assert header_host(frame) == host


# The definition header_host implements with one pattern per shape (for speed): an oracle
_ONE_PATTERN = re.compile(
    rb"<\d{1,3}>(?:\d{1,2} \S+ (\S+)"
    rb"|[A-Z][a-z]{2} [ \d]?\d \d\d:\d\d:\d\d(?:\.\d+)? (\S+)"
    rb"|\d{4}-\d\d-\d\dT\S+ (\S+))"
)
_PIECES = [b"<13>", b"<191>", b"<1>", b"1", b"12", b"2026-11-22T00:15:51Z", b"2026", b"-", b" ",
           b"  ", b"Nov", b" 2", b"22", b"00:15:51", b".5", b"web01", b"sshd[1]:", b"cron:", b"x",
           b"\xff", b"T", b":"]  # fmt: skip


def _oracle(frame: bytes) -> str | None:
    m = _ONE_PATTERN.match(frame)
    if m is None:
        return None
    token = m.group(m.lastindex or 1)
    if token == b"-" or token.endswith(b":") or b"[" in token:
        return None
    return token.decode("utf-8", "replace")


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=12), st.binary(max_size=8))
def test_header_host_agrees_with_the_one_pattern_definition(
    pieces: list[bytes], tail: bytes
) -> None:
    frame = b"".join(pieces) + tail
    assert header_host(frame) == _oracle(frame)


@pytest.mark.parametrize(
    "frames",
    [
        # same memo prefix, then different bytes: each answer must still be the oracle's
        [
            b"<13>Nov 22 00:15:51 db02 sshd[1]: a",
            b"<13>Nov 22 00:15:51 db02 x",
            b"<13>Nov 22 00:15:51 db02 ",
        ],
        [b"<13>Nov 22 00:15:51.5 db02 a", b"<13>Nov 22 00:15:51.5 other b"],
        [b"<13>1 2026-11-22T00:15:51Z web01 app", b"<13>1 2026-11-22T00:15:51Z web02 app"],
        [b"<13>2026-11-22T00:15:51Z relay1 tag: x", b"<13>2026-11-22T00:15:51Z relay2 tag: x"],
        [
            b"<13>Nov 22 00:15:51 cron: local",
            b"<13>Nov 22 00:15:51 cron: other",
            b"<13>Nov 22 00:15:51 cron:\tx",
        ],
        [b"<13>Nov 22 00:15:51 db02\tx y", b"<13>Nov 22 00:15:51 db02\ty z"],
    ],
)
def test_header_host_memo_never_answers_for_a_different_header(frames: list[bytes]) -> None:
    for _ in range(2):  # the second round answers from the memo where it may
        assert [header_host(f) for f in frames] == [_oracle(f) for f in frames]


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:514") == ("127.0.0.1", 514)
    assert parse_listen("[::1]:6514") == ("::1", 6514)
    assert parse_listen(":514") == ("0.0.0.0", 514)
    with pytest.raises(ValueError, match="not HOST:PORT"):
        parse_listen("localhost")


def test_udp_datagrams(tmp_path: Path, local_bus: LocalBus) -> None:
    got: list[Record] = []

    async def scenario(agent: Agent, src: SyslogSource) -> None:
        assert agent.listen_addresses == [f"syslog udp 127.0.0.1:{src.bound['udp'][1]}"]
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        try:
            for payload in (
                b"<13>Nov 22 00:15:51 web01 app: one\n",
                b"<13>1 2026-11-22T00:15:51Z web02 app - - - two\x00",
                b"no header at all",
                b"\n",  # nothing: not a record
                b"<13>" + b"x" * 5000,  # over max_frame_bytes
                b"\xff\xfe not utf-8",
            ):
                sock.sendto(payload, src.bound["udp"])
        finally:
            sock.close()
        got.extend(await read_until(local_bus, 4))
        assert {tuple(r.meta.items()) for r in got} == {
            (("peer", f"127.0.0.1:{port}"), ("transport", "udp"))
        }

    cfg = syslog_config(protocols=["udp"], max_frame_bytes=4096, tag="net")
    agent = run_agent(tmp_path, local_bus, make_config(tmp_path, cfg), scenario)
    # partitioned by host: compare as a mapping, not in arrival order
    assert {r.line: r.host for r in got} == {
        "<13>Nov 22 00:15:51 web01 app: one": "web01",
        "<13>1 2026-11-22T00:15:51Z web02 app - - - two": "web02",
        "no header at all": "127.0.0.1",
        "\ufffd\ufffd not utf-8": "127.0.0.1",
    }
    assert [r.raw for r in got if r.raw is not None] == [b"\xff\xfe not utf-8"]
    assert {r.source for r in got} == {"net"}
    assert counters(agent) == {"received": 4, "bytes": counters(agent)["bytes"], "rejected": 1}


@pytest.mark.parametrize("runner", LOOPS, ids=["asyncio", "uvloop"])
def test_tcp_connections_with_both_framings(
    tmp_path: Path, local_bus: LocalBus, caplog: pytest.LogCaptureFixture, runner: LoopRunner
) -> None:
    got: list[Record] = []

    async def scenario(agent: Agent, src: SyslogSource) -> None:
        host, port = src.bound["tcp"]
        _, w1 = await asyncio.open_connection(host, port)
        _, w2 = await asyncio.open_connection(host, port)
        frames = [b"<13>1 - h1 app - - - octet %d\n" % i for i in range(200)]
        octets = b"".join(b"%d %s" % (len(f), f) for f in frames)
        lines = b"".join(b"<13>Nov 22 00:15:51 h2 app: line %d\n" % i for i in range(200))
        for i in range(0, max(len(octets), len(lines)), 97):  # interleaved, split mid-frame
            w1.write(octets[i : i + 97])
            w2.write(lines[i : i + 97])
            await w1.drain()
            await w2.drain()
        w2.write(b"<13>" + b"z" * 3000 + b"\n" + b"<13>h2 last")
        w1.write(b"100 <13>cut short")
        for w in (w1, w2):
            await w.drain()
            w.close()
            await w.wait_closed()
        got.extend(await read_until(local_bus, 402))

    cfg = syslog_config(protocols=["tcp"], max_frame_bytes=2048)
    with caplog.at_level(logging.WARNING):
        agent = run_agent(tmp_path, local_bus, make_config(tmp_path, cfg), scenario, runner)
    # one host's records keep their order (one partition); the two without a header host
    # fall back to the peer address
    h1 = [r.line for r in got if r.host == "h1"]
    h2 = [r.line for r in got if r.host == "h2"]
    assert h1 == [f"<13>1 - h1 app - - - octet {i}" for i in range(200)]
    assert h2 == [f"<13>Nov 22 00:15:51 h2 app: line {i}" for i in range(200)]
    ends = {r.line: r.meta.get("truncated") for r in got if r.host == "127.0.0.1"}
    assert ends == {"<13>cut short": True, "<13>h2 last": None}
    assert {r.meta["transport"] for r in got} == {"tcp"}
    assert len({r.meta["peer"] for r in got}) == 2
    assert counters(agent)["rejected"] == 1
    assert "rejected a frame" in caplog.text
    assert "max_frame_bytes=2048" in caplog.text


def test_frames_accepted_before_stop_are_delivered(tmp_path: Path, local_bus: LocalBus) -> None:
    sent = 3000
    local_bus.ensure_topic(TopicSpec(RAW_TOPIC, 4))
    producer = local_bus.producer()
    cfg = make_config(tmp_path, syslog_config(protocols=["tcp"]))
    agent = Agent(cfg, producer, StatsRegistry("test"))

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        await agent.wait_ready()
        src = agent.sources[0]
        assert isinstance(src, SyslogSource)
        _, w = await asyncio.open_connection(*src.bound["tcp"])
        w.write(b"".join(b"<13>Nov 22 00:15:51 h app: %d\n" % i for i in range(sent)))
        w.write(b"<13>Nov 22 00:15:51 h app: unfinished")
        await w.drain()
        # until the listener holds the unfinished frame, i.e. has read every byte
        deadline = time.monotonic() + 10
        while not any(c.decoder._buf for c in src._conns):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        stop.set()  # with the connection still open: the agent cuts it
        await asyncio.wait_for(task, 20)
        w.close()
        await w.wait_closed()

    try:
        asyncio.run(main())
    finally:
        producer.close()
    got = asyncio.run(read_until(local_bus, sent + 1))
    assert [r.line for r in got[:sent]] == [f"<13>Nov 22 00:15:51 h app: {i}" for i in range(sent)]
    assert got[sent].line.endswith("unfinished")
    assert got[sent].meta["truncated"] is True
    assert counters(agent)["received"] == sent + 1


def test_port_in_use_fails_loudly(tmp_path: Path, local_bus: LocalBus) -> None:
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    producer = local_bus.producer()
    cfg = make_config(tmp_path, syslog_config(protocols=["tcp"], listen=f"127.0.0.1:{port}"))
    agent = Agent(cfg, producer, StatsRegistry("test"))

    async def main() -> None:
        task = asyncio.create_task(agent.run(asyncio.Event()))
        with pytest.raises(OSError, match=r"(?i)address already in use"):
            await asyncio.wait_for(agent.wait_ready(), 10)
        with pytest.raises(OSError, match=r"(?i)address already in use"):
            await asyncio.wait_for(task, 10)

    try:
        asyncio.run(main())
    finally:
        holder.close()
        producer.close()


class ListSource:
    """A source emitting fixed records, to test the agent without sockets."""

    def __init__(self, name: str, records: list[Record], fail: bool = False) -> None:
        self.name = name
        self.records = records
        self.fail = fail

    async def run(self, emit: Emit, stop: asyncio.Event) -> None:
        for rec in self.records:
            await emit(rec)
        if self.fail:
            raise RuntimeError("source broke")
        await stop.wait()

    async def started(self) -> None:
        return None


class SlowProducer:
    """Reports a large backlog until released, like a bus that cannot keep up."""

    def __init__(self) -> None:
        self.produced: list[tuple[str, bytes, bytes | None]] = []
        self.backlog = BACKLOG_HIGH + 1
        self.flushes = 0
        self.asked = 0  # how often pending() was called: the agent polls it while it waits

    def produce(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        self.produced.append((topic, value, key))

    def pending(self) -> int:
        self.asked += 1
        return self.backlog

    def flush(self, timeout: float | None = None) -> None:
        self.flushes += 1

    def close(self) -> None:
        return None


def test_emit_waits_while_the_bus_backlog_is_high(tmp_path: Path) -> None:
    producer = SlowProducer()
    records = [make_record("demo", f"h{i % 3}", f"line {i}") for i in range(500)]
    agent = Agent(
        make_config(tmp_path),
        producer,
        StatsRegistry("t"),
        extra_sources=[ListSource("d", records)],
    )

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        await agent.wait_ready()
        # until the agent is seen waiting for the backlog: it asked again after a record
        deadline = time.monotonic() + 30
        while not (producer.produced and producer.asked > len(producer.produced) + 1):
            assert time.monotonic() < deadline, "the agent never waited for the backlog"
            await asyncio.sleep(0.005)
        held = len(producer.produced)
        producer.backlog = 0
        while len(producer.produced) < 500:
            assert time.monotonic() < deadline, f"{len(producer.produced)} of 500 after release"
            await asyncio.sleep(0.01)
        stop.set()
        await task
        assert held < 500  # the source was held back, not buffered without bound

    asyncio.run(main())
    topic, value, key = producer.produced[7]
    assert topic == RAW_TOPIC
    assert key == b"h1"
    assert decode_record(value).line == "line 7"
    assert producer.flushes >= 1
    assert agent.registry.snapshot()["counters"]["source:d"]["received"] == 500


def test_a_failing_source_stops_the_agent_and_raises(tmp_path: Path, local_bus: LocalBus) -> None:
    local_bus.ensure_topic(TopicSpec(RAW_TOPIC, 2))
    producer = local_bus.producer()
    good = ListSource("good", [make_record("demo", "a", "kept")])
    bad = ListSource("bad", [make_record("demo", "b", "also kept")], fail=True)
    agent = Agent(make_config(tmp_path), producer, StatsRegistry("t"), extra_sources=[good, bad])
    with pytest.raises(RuntimeError, match="source broke"):
        asyncio.run(asyncio.wait_for(agent.run(asyncio.Event()), 10))
    producer.close()
    got = asyncio.run(read_until(local_bus, 2))
    assert sorted(r.line for r in got) == ["also kept", "kept"]


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_a_full_queue_pauses_the_sockets_until_drained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, proto: str
) -> None:
    import logfactory.collect.sources.syslog as syslog_module

    monkeypatch.setattr(syslog_module, "QUEUE_HIGH", 20)
    monkeypatch.setattr(syslog_module, "QUEUE_LOW", 5)
    monkeypatch.setattr(syslog_module._UdpReader, "BATCH", 8)
    producer = SlowProducer()
    sent = 20_000 if proto == "tcp" else 500  # TCP: several reads' worth
    cfg = make_config(tmp_path, syslog_config(protocols=[proto]))
    agent = Agent(cfg, producer, StatsRegistry("t"))

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        await agent.wait_ready()
        src = agent.sources[0]
        assert isinstance(src, SyslogSource)
        frames = [b"<13>Nov 22 00:15:51 h app: %d\n" % i for i in range(sent)]
        if proto == "tcp":
            _, w = await asyncio.open_connection(*src.bound["tcp"])
            w.write(b"".join(frames))
            await w.drain()
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for frame in frames:
                sock.sendto(frame, src.bound["udp"])
            sock.close()
        deadline = time.monotonic() + 10
        while not src._paused:
            assert time.monotonic() < deadline, "never paused"
            await asyncio.sleep(0.005)
        # bounded by the high mark plus one read, not the whole burst
        assert len(src._queue) <= (sent // 2 if proto == "tcp" else 20 + 8)
        producer.backlog = 0
        while len(producer.produced) < sent:
            assert time.monotonic() < deadline, f"{len(producer.produced)} of {sent}"
            await asyncio.sleep(0.01)
        assert not src._paused
        if proto == "tcp":
            w.close()
            await w.wait_closed()
        stop.set()
        await task

    asyncio.run(main())
    lines = [decode_record(v).line for _, v, _ in producer.produced]
    assert lines == [f"<13>Nov 22 00:15:51 h app: {i}" for i in range(sent)]


def test_lag_is_what_was_accepted_and_not_yet_emitted(tmp_path: Path) -> None:
    src = SyslogSource(syslog_config(), SourceContext(tmp_path))
    assert src.lag() == (0, "records")
    for i in range(3):
        src.push(f"<13>Nov 22 00:15:51 web01 app: {i}".encode(), "10.0.0.1", {})
    assert src.lag() == (3, "records")
