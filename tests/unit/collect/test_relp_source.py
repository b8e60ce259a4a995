"""The RELP listener over real sockets on 127.0.0.1: the session, answers only once durable,
broken streams ended and counted, bounds, and the clean stop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.configs import source_as

from logfactory.bus.local import LocalBus
from logfactory.collect.agent import RAW_TOPIC, Agent
from logfactory.collect.sources.context import SourceContext
from logfactory.collect.sources.relp import RelpSource
from logfactory.config import (
    Config,
    ConfigError,
    NodeConfig,
    RelpSourceConfig,
    SourceConfig,
    key_path,
    parse_config,
    source_config,
)
from logfactory.config.checks import check_config
from logfactory.node_start import failed_listener
from logfactory.record import Record, decode_record
from logfactory.stats import StatsRegistry

OFFERS = b"relp_version=0\nrelp_software=librelp,1.11.0,http://librelp.adiscon.com\ncommands=syslog"
SERVERCLOSE = (0, "serverclose", b"")


def frame(txnr: int, command: str, data: bytes = b"") -> bytes:
    if not data:
        return b"%d %s 0\n" % (txnr, command.encode())
    return b"%d %s %d %s\n" % (txnr, command.encode(), len(data), data)


def ok(txnr: int) -> tuple[int, str, bytes]:
    return (txnr, "rsp", b"200 OK")


class GatedEmit:
    """An Emit that keeps what it is given; ``flush`` waits for ``gate`` (open by default)
    and tells ``flushing`` it was called: a test decides when records become durable."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.flushing = asyncio.Event()
        self.durable = 0  # records the last completed flush covered

    async def __call__(self, record: Record) -> None:
        self.records.append(record)

    async def many(self, records: Sequence[Record]) -> None:
        self.records.extend(records)

    async def flush(self) -> None:
        covered = len(self.records)
        self.flushing.set()
        await self.gate.wait()
        self.durable = covered


def source(registry: StatsRegistry | None = None, **keys: Any) -> RelpSource:
    config = source_as(
        RelpSourceConfig, type="relp", name="relp", tag="sys", listen="127.0.0.1:0", **keys
    )
    # a relp source keeps nothing on disk
    return RelpSource(config, SourceContext(Path("unused"), registry or StatsRegistry("t")))


async def serve(src: RelpSource, emit: GatedEmit, body: Callable[[int], Awaitable[None]]) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(src.run(emit, stop))
    await asyncio.wait_for(src.started(), 5)
    assert src.bound is not None
    try:
        await asyncio.wait_for(body(src.bound[1]), 20)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, str, bytes]:
    """One RELP frame as the client sees it: (txnr, command, data)."""
    txnr = int((await reader.readuntil(b" "))[:-1])
    command = (await reader.readuntil(b" "))[:-1].decode()
    digits = b""
    while (c := await reader.readexactly(1)).isdigit():
        digits += c
    if int(digits) == 0:
        assert c == b"\n"
        return txnr, command, b""
    assert c == b" "
    data = await reader.readexactly(int(digits))
    assert await reader.readexactly(1) == b"\n"
    return txnr, command, data


async def connect(port: int, *, open_session: bool = True) -> tuple[Any, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if open_session:
        writer.write(frame(1, "open", OFFERS))
        txnr, command, data = await read_frame(reader)
        assert (txnr, command) == (1, "rsp")
        assert data == b"200 OK\nrelp_version=0\nrelp_software=logfactory\ncommands=syslog"
    return reader, writer


def run(coro: Awaitable[None]) -> None:
    async def main() -> None:
        await coro

    asyncio.run(main())


def test_a_session_open_syslog_close() -> None:
    registry = StatsRegistry("test")
    src, emit = source(registry), GatedEmit()

    async def body(port: int) -> None:
        reader, writer = await connect(port)
        writer.write(
            frame(2, "syslog", b"<13>Nov 22 00:15:51 web01 app: one")
            + frame(3, "syslog", b"<13>1 2026-11-22T00:15:51Z db02 app - - - two\n")
            + frame(4, "syslog", b"")  # nothing to keep, answered all the same
            + frame(5, "close")
        )
        assert [await read_frame(reader) for _ in range(4)] == [
            ok(2), ok(3), ok(4), (5, "rsp", b"")
        ]  # fmt: skip
        assert await reader.read() == b""  # closed after the close's answer
        writer.close()

    run(serve(src, emit, body))
    assert [(r.line, r.host, r.source) for r in emit.records] == [
        ("<13>Nov 22 00:15:51 web01 app: one", "web01", "sys"),
        ("<13>1 2026-11-22T00:15:51Z db02 app - - - two", "db02", "sys"),
    ]
    assert emit.records[0].meta["transport"] == "relp"
    assert emit.records[0].meta["peer"].startswith("127.0.0.1:")
    assert "rejected" not in registry.snapshot()["counters"].get("source:relp", {})


def test_answers_wait_until_the_records_are_durable() -> None:
    src, emit = source(), GatedEmit()
    emit.gate.clear()

    async def body(port: int) -> None:
        reader, writer = await connect(port)  # the open needs no flush
        writer.write(b"".join(frame(n, "syslog", b"line %d" % n) for n in (2, 3, 4)))
        await emit.flushing.wait()  # emitted, now being made durable
        assert len(emit.records) == 3
        with pytest.raises(TimeoutError):  # no answer before the flush returned
            await asyncio.wait_for(reader.read(1), 0.3)
        emit.gate.set()
        assert [await read_frame(reader) for _ in range(3)] == [ok(2), ok(3), ok(4)]
        assert emit.durable == 3
        writer.close()

    run(serve(src, emit, body))


@pytest.mark.parametrize(
    ("sent", "answered", "kept"),
    [
        pytest.param(frame(3, "syslog", b"x"), [], 0, id="txnr out of order"),
        pytest.param(b"x syslog 1 a\n", [], 0, id="txnr not a number"),
        pytest.param(
            frame(2, "syslog", b"good") + b"3 syslog 3 abcdef\n",
            [ok(2)],
            1,
            id="datalen does not match, the good frame before it answered",
        ),
        pytest.param(b"2 syslog 999999999 ", [], 0, id="datalen over max_frame_bytes"),
        pytest.param(b"GET / HTTP/1.1\r\n\r\n", [], 0, id="not relp"),
    ],
)
def test_a_broken_stream_is_answered_up_to_the_break_then_closed_and_counted(
    sent: bytes, answered: list[tuple[int, str, bytes]], kept: int
) -> None:
    registry = StatsRegistry("test")
    src, emit = source(registry, max_frame_bytes=1024), GatedEmit()

    async def body(port: int) -> None:
        reader, writer = await connect(port)
        writer.write(sent)  # the huge DATALEN: only its header, the data never comes
        got = [await read_frame(reader) for _ in range(len(answered) + 1)]
        assert got == [*answered, SERVERCLOSE]
        assert await reader.read() == b""
        writer.close()
        other, other_writer = await connect(port)  # the listener serves on
        other_writer.write(frame(2, "syslog", b"next"))
        assert await read_frame(other) == ok(2)
        other_writer.close()

    run(serve(src, emit, body))
    assert len(emit.records) == kept + 1
    assert registry.snapshot()["counters"]["source:relp"]["rejected"] == 1


@pytest.mark.parametrize(
    ("sent", "first"),
    [
        pytest.param(frame(1, "syslog", b"x"), SERVERCLOSE, id="syslog before open"),
        pytest.param(
            frame(1, "open", b"relp_version=0\ncommands=eventlog"),
            (1, "rsp", b"500 required command not supported by client"),
            id="open without syslog",
        ),
        pytest.param(
            frame(1, "open", b"commands=syslog"),
            (1, "rsp", b"500 the open offers no relp_version"),
            id="open without relp_version",
        ),
    ],
)
def test_a_session_that_is_not_opened_properly_ends(
    sent: bytes, first: tuple[int, str, bytes]
) -> None:
    registry = StatsRegistry("test")
    src, emit = source(registry), GatedEmit()

    async def body(port: int) -> None:
        reader, writer = await connect(port, open_session=False)
        writer.write(sent)
        got = [await read_frame(reader)]
        if got[0] != SERVERCLOSE:
            got.append(await read_frame(reader))
        assert got[0] == first
        assert got[-1] == SERVERCLOSE
        assert await reader.read() == b""
        writer.close()

    run(serve(src, emit, body))
    assert emit.records == []
    assert registry.snapshot()["counters"]["source:relp"]["rejected"] == 1


def test_an_unknown_command_is_refused_and_the_session_goes_on() -> None:
    src, emit = source(), GatedEmit()

    async def body(port: int) -> None:
        reader, writer = await connect(port)
        writer.write(frame(2, "starttls") + frame(3, "syslog", b"after"))
        assert await read_frame(reader) == (2, "rsp", b"500 command not supported")
        assert await read_frame(reader) == ok(3)
        writer.close()

    run(serve(src, emit, body))
    assert [r.line for r in emit.records] == ["after"]


def test_a_silent_session_is_closed_and_one_over_the_cap_refused() -> None:
    registry = StatsRegistry("test")
    src = source(registry, connection_idle_timeout=0.2, max_connections=1)
    emit = GatedEmit()

    async def body(port: int) -> None:
        reader, writer = await connect(port)
        extra, extra_writer = await connect(port, open_session=False)
        assert await extra.read() == b""  # over max_connections: closed at once
        extra_writer.close()
        assert await reader.read() == b""  # silent: closed by the idle timeout
        writer.close()

    run(serve(src, emit, body))
    counters = registry.snapshot()["counters"]["source:relp"]
    assert counters["connections_timed_out"] == 1
    assert counters["connections_refused"] == 1


def test_a_stop_answers_what_was_taken_then_says_serverclose() -> None:
    src, emit = source(), GatedEmit()
    stop = asyncio.Event()

    async def main() -> None:
        task = asyncio.create_task(src.run(emit, stop))
        await src.started()
        assert src.bound is not None
        reader, writer = await connect(src.bound[1])
        emit.gate.clear()
        writer.write(b"".join(frame(n, "syslog", b"line %d" % n) for n in range(2, 50)))
        await emit.flushing.wait()
        stop.set()  # while answers wait for a flush
        emit.gate.set()
        got = [await read_frame(reader) for _ in range(49)]
        assert got == [*(ok(n) for n in range(2, 50)), SERVERCLOSE]
        assert await reader.read() == b""
        writer.close()
        await asyncio.wait_for(task, 10)

    asyncio.run(main())
    assert len(emit.records) == 48


def test_with_the_agent_an_answered_line_is_on_the_bus(tmp_path: Any, bus: LocalBus) -> None:
    """The agent's emit.flush is the producer's: what was answered can be read back at once."""
    sc = source_config(type="relp", name="relp", tag="sys", listen="127.0.0.1:0")
    config = Config(node=NodeConfig(data_dir=str(tmp_path / "data")), sources=[sc])
    producer = bus.producer()
    agent = Agent(config, producer, StatsRegistry("test"), checkpoint_interval=3600)
    consumer = bus.consumer(None, [RAW_TOPIC])

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        try:
            await asyncio.wait_for(agent.wait_ready(), 10)
            src = agent.sources[0]
            assert isinstance(src, RelpSource)
            assert src.bound is not None
            reader, writer = await connect(src.bound[1])
            for n in range(2, 202):
                writer.write(frame(n, "syslog", b"line %d" % n))
                assert await read_frame(reader) == ok(n)
                # answered: on logs.raw now (no checkpoint runs within this test)
                got = consumer.poll(10, 0)
                assert [decode_record(m.value).line for m in got] == [f"line {n}"]
            writer.close()
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)

    try:
        asyncio.run(main())
    finally:
        consumer.close()
        producer.close()


def test_check_knows_relp_is_one_tcp_listener() -> None:
    def problems(*sources: SourceConfig) -> list[str]:
        return [f"{key_path(p)}: {m}" for p, m in check_config(Config(sources=list(sources)))]

    relp = source_config(type="relp", listen="127.0.0.1:2514")
    udp_only = source_config(type="syslog", listen="127.0.0.1:2514", protocols=["udp"])
    tcp = source_config(type="syslog", listen="0.0.0.0:2514", protocols=["tcp"])
    assert problems(relp, udp_only) == []
    assert problems(relp, tcp) == [
        "sources[1].listen: tcp 0.0.0.0:2514 overlaps tcp 127.0.0.1:2514, which is already taken "
        "by sources[0].listen; give each listener a port of its own"
    ]
    assert problems(source_config(type="relp")) == [
        "sources[0].listen: a relp source needs 'listen: HOST:PORT' (TCP)",
    ]
    with pytest.raises(ConfigError, match=r"c.yaml:2: sources\[0\].tls_listen: unknown key "):
        parse_config(
            "sources:\n  - {type: relp, listen: '127.0.0.1:2514', tls_listen: ':6514'}\n", "c.yaml"
        )


def test_a_port_in_use_is_named_as_tcp() -> None:
    sc = source_config(type="relp", listen="127.0.0.1:2514")
    assert failed_listener(sc, None) == ("listen", "tcp", "127.0.0.1:2514")
