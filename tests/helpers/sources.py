"""The network sources' harness (syslog, SNMP, RELP, raw): an Agent run around a scenario on a
chosen event loop (asyncio and uvloop, the node's), reading logs.raw from a coroutine, the
source's counters, and whether this process may raise socket buffers past the kernel's cap."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import uvloop
from tests.helpers.configs import source_as

from logfactory.bus.base import TopicSpec
from logfactory.bus.local import LocalBus
from logfactory.collect.agent import RAW_TOPIC, Agent
from logfactory.collect.sources.syslog import SyslogSource
from logfactory.config import Config, NodeConfig, SourceConfig, SyslogSourceConfig
from logfactory.record import Record, decode_record
from logfactory.stats import StatsRegistry

S = TypeVar("S")


def make_config(tmp_path: Path, *sources: SourceConfig) -> Config:
    return Config(node=NodeConfig(data_dir=str(tmp_path / "data")), sources=list(sources))


def syslog_config(**kw: Any) -> SyslogSourceConfig:
    base: dict[str, Any] = {"type": "syslog", "name": "sys", "listen": "127.0.0.1:0"}
    base.update(kw)
    return source_as(SyslogSourceConfig, **base)


async def read_until(bus: LocalBus, n: int, timeout: float = 10.0) -> list[Record]:
    consumer = bus.consumer(None, [RAW_TOPIC])
    loop = asyncio.get_running_loop()
    out: list[Record] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < n:
            assert time.monotonic() < deadline, f"timed out with {len(out)}/{n} records"
            msgs = await loop.run_in_executor(None, consumer.poll, 1000, 0.05)
            out += [decode_record(m.value) for m in msgs]
        return out
    finally:
        consumer.close()


Scenario = Callable[[Agent, SyslogSource], Awaitable[None]]


LoopRunner = Callable[[Coroutine[Any, Any, None]], None]
LOOPS: list[LoopRunner] = [asyncio.run, uvloop.run]  # the node runs on uvloop (node.py)


def agent_around(
    config: Config,
    bus: LocalBus,
    kind: type[S],
    scenario: Callable[[Agent, S], Awaitable[None]],
    *,
    runner: LoopRunner = asyncio.run,
    registry: StatsRegistry | None = None,
    partitions: int = 4,
    hostname: str | None = None,
) -> Agent:
    """Run an agent of ``config`` around ``scenario`` (given the agent and its first source, a
    ``kind``) on the event loop ``runner`` makes, and stop it cleanly afterwards."""
    bus.ensure_topic(TopicSpec(RAW_TOPIC, partitions))
    producer = bus.producer()
    extra: dict[str, Any] = {} if hostname is None else {"hostname": hostname}
    agent = Agent(config, producer, registry or StatsRegistry("test"), **extra)

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        try:
            await asyncio.wait_for(agent.wait_ready(), 10)
            src = agent.sources[0]
            assert isinstance(src, kind), src
            await scenario(agent, src)
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)

    try:
        runner(main())
    finally:
        producer.close()
    return agent


def run_agent(
    tmp_path: Path, bus: LocalBus, config: Config, scenario: Scenario,
    runner: LoopRunner = asyncio.run,
) -> Agent:  # fmt: skip
    """Run an agent with a syslog source around ``scenario`` and stop it cleanly afterwards."""
    return agent_around(config, bus, SyslogSource, scenario, runner=runner)


class EmitTo:
    """An ``Emit`` (collect/sources/base.py) that hands every record to ``each``: what a source
    under test emits, without an agent."""

    def __init__(self, each: Callable[[Record], Awaitable[None]]) -> None:
        self.each = each

    def __call__(self, record: Record, /) -> Awaitable[None]:
        return self.each(record)

    async def many(self, records: Sequence[Record], /) -> None:
        for record in records:
            await self.each(record)


def counters(agent: Agent, group: str = "source:sys") -> dict[str, int]:
    return dict(agent.registry.snapshot()["counters"].get(group, {}))


def may_force_buffers() -> bool:
    """CAP_NET_ADMIN (bit 12 of the effective set) lets a process pass net.core.rmem_max."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> 12 & 1)
    return False
