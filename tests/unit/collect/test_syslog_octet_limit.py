"""An octet count over max_frame_bytes closes the TCP connection, counted, instead of skipping
up to ~1 GB of whatever the sender writes next (a real listener, a real socket)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from tests.helpers.sources import (
    LOOPS,
    LoopRunner,
    counters,
    make_config,
    read_until,
    run_agent,
    syslog_config,
)

from logfactory.bus.local import LocalBus
from logfactory.collect.agent import Agent
from logfactory.collect.sources.syslog import SyslogSource
from logfactory.record import Record


@pytest.mark.parametrize("runner", LOOPS, ids=["asyncio", "uvloop"])
def test_an_octet_count_over_the_limit_closes_the_connection(
    tmp_path: Path, local_bus: LocalBus, caplog: pytest.LogCaptureFixture, runner: LoopRunner
) -> None:
    got: list[Record] = []

    async def scenario(agent: Agent, src: SyslogSource) -> None:
        host, port = src.bound["tcp"]
        reader, writer = await asyncio.open_connection(host, port)
        try:
            # nine digits, read as a count with the default 1 MiB limit; then a frame that the
            # old skip would have swallowed without a word
            writer.write(b"9 <13>first999999999 <13>" + b"x" * 1000 + b"9 <13>after")
            await writer.drain()
            try:
                async with asyncio.timeout(10):
                    rest = await reader.read()  # the node closes: EOF, or a reset (unread bytes)
            except ConnectionResetError:
                rest = b""
            assert rest == b""
        finally:
            writer.close()
        _, other = await asyncio.open_connection(host, port)  # the listener serves on
        other.write(b"8 <13>next")
        await other.drain()
        other.close()
        await other.wait_closed()
        got.extend(await read_until(local_bus, 2))

    with caplog.at_level(logging.WARNING):
        agent = run_agent(tmp_path, local_bus, make_config(tmp_path, syslog_config()), scenario,
                          runner)  # fmt: skip
    assert sorted(r.line for r in got) == ["<13>first", "<13>next"]
    assert counters(agent)["rejected"] == 1
    assert "octet count 999999999 exceeds max_frame_bytes=1048576; connection closed" in (
        caplog.text
    )
