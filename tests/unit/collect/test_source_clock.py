"""Every source stamps what it receives with the clock of its SourceContext.

Why: a record's ``received`` is where latency is measured from and what dead letters and the
store sort by; a source reading the wall clock by itself could only be tested against the
wall clock. With the clock in the one context every source is built from, a test fixes it and
asserts the exact stamp, for datagrams, stream frames and file lines alike.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from tests.helpers.ports import free_port_both
from tests.helpers.waiting import wait_for

from logfactory.bus.base import TopicSpec
from logfactory.bus.local import LocalBus
from logfactory.collect.agent import RAW_TOPIC, Agent
from logfactory.config import parse_config
from logfactory.record import Record, decode_record
from logfactory.stats import StatsRegistry

FIXED = 1_764_980_000_123_456_789  # ns since the epoch: nothing the wall clock would give


def _read(bus: LocalBus, n: int) -> list[Record]:
    consumer = bus.consumer(None, [RAW_TOPIC], "earliest")
    out: list[Record] = []
    try:

        def more() -> bool:
            out.extend(decode_record(m.value) for m in consumer.poll(1000, 0.05))
            return len(out) >= n

        wait_for(more, timeout=15, what=f"{n} records on logs.raw")
        return out
    finally:
        consumer.close()


def test_syslog_udp_tcp_and_file_lines_carry_the_context_clock(
    tmp_path: Path, local_bus: LocalBus
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_text("a file line\n")
    port = free_port_both()
    config = parse_config(
        f"""
node: {{name: t, data_dir: {tmp_path / "d"}}}
sources:
  - {{type: syslog, name: sys, listen: "127.0.0.1:{port}", protocols: [udp, tcp], tag: net}}
  - {{type: file, name: files, paths: ["{logs}/*.log"], tag: app, start_at: beginning}}
""",
        "clock.yaml",
    )
    local_bus.ensure_topic(TopicSpec(RAW_TOPIC, 4))
    producer = local_bus.producer()
    agent = Agent(config, producer, StatsRegistry("test"), clock=lambda: FIXED)

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        await asyncio.wait_for(agent.wait_ready(), 10)
        bound = agent.sources[0].bound  # type: ignore[attr-defined]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(b"<13>Dec  6 07:00:00 web01 app: over udp", bound["udp"])
        reader, writer = await asyncio.open_connection(*bound["tcp"])
        writer.write(b"<13>Dec  6 07:00:01 web02 app: over tcp\n")
        await writer.drain()
        got = await asyncio.get_running_loop().run_in_executor(None, _read, local_bus, 3)
        writer.close()
        stop.set()
        await asyncio.wait_for(task, 20)
        assert {r.line: r.received for r in got} == {
            "<13>Dec  6 07:00:00 web01 app: over udp": FIXED,
            "<13>Dec  6 07:00:01 web02 app: over tcp": FIXED,
            "a file line": FIXED,
        }
        del reader

    try:
        asyncio.run(main())
    finally:
        producer.close()
