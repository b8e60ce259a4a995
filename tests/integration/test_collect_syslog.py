"""util-linux ``logger`` (the real program) into the agent's syslog listener and onto logs.raw."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from tests.helpers.sources import read_until

from logfactory.bus.base import TopicSpec
from logfactory.bus.local import LocalBus
from logfactory.collect.agent import RAW_TOPIC, Agent
from logfactory.collect.sources.syslog import SyslogSource
from logfactory.config import Config, NodeConfig, source_config
from logfactory.record import Record
from logfactory.stats import StatsRegistry

pytestmark = pytest.mark.integration

LOGGER = "/usr/bin/logger"

# (transport flag, extra flags, framing): the combinations verified in reference/peers
CASES = [
    ("--udp", ["--rfc3164"]),
    ("--udp", ["--rfc5424=notq"]),
    ("--tcp", ["--rfc3164"]),
    ("--tcp", ["--rfc5424=notq"]),
    ("--tcp", ["--octet-count", "--rfc5424=notq"]),
    ("--tcp", ["--octet-count", "--rfc3164"]),
]


async def logger(port: int, transport: str, flags: list[str], message: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        LOGGER, "--server", "127.0.0.1", "--port", str(port), transport, *flags,
        "-t", "lftest", message,
    )  # fmt: skip
    assert await asyncio.wait_for(proc.wait(), 10) == 0


def test_logger_over_udp_and_tcp_all_framings(tmp_path: Path, local_bus: LocalBus) -> None:
    local_bus.ensure_topic(TopicSpec(RAW_TOPIC, 4))
    source = source_config(type="syslog", name="syslog", listen="127.0.0.1:0", tag="sys")
    config = Config(node=NodeConfig(data_dir=str(tmp_path / "data")), sources=[source])
    producer = local_bus.producer()
    agent = Agent(config, producer, StatsRegistry("test"))
    got: list[Record] = []

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        try:
            await asyncio.wait_for(agent.wait_ready(), 10)
            src = agent.sources[0]
            assert isinstance(src, SyslogSource)
            for i, (transport, flags) in enumerate(CASES):
                port = src.bound[transport.strip("-")][1]
                await logger(port, transport, flags, f"case {i} {transport} {' '.join(flags)}")
            got.extend(await read_until(local_bus, len(CASES)))
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)

    try:
        asyncio.run(main())
    finally:
        producer.close()
    assert len(got) == len(CASES)
    by_case = {r.line.split("case ", 1)[1].split(" ", 1)[0]: r for r in got}
    hostname = socket.gethostname()
    for i, (transport, flags) in enumerate(CASES):
        rec = by_case[str(i)]
        assert rec.line.startswith("<13>"), rec.line
        assert rec.line.endswith(f"lftest: case {i} {transport} {' '.join(flags)}") or (
            rec.line.endswith(f"lftest - - - case {i} {transport} {' '.join(flags)}")
        ), rec.line
        assert "\n" not in rec.line
        assert "\x00" not in rec.line
        assert rec.host == hostname
        assert rec.source == "sys"
        assert rec.meta["transport"] == transport.strip("-")
        assert rec.meta["peer"].startswith("127.0.0.1:")
        assert "truncated" not in rec.meta
    counters = agent.registry.snapshot()["counters"]["source:syslog"]
    assert counters["received"] == len(CASES)
    assert "rejected" not in counters
