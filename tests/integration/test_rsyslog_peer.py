"""A real rsyslogd forwards to the agent's syslog source over UDP, TCP octet-counted and TLS.

rsyslogd runs unprivileged in the foreground with its own config, work directory and pid file
(no imuxsock/imklog: it never touches /dev/log). ``logger`` feeds one rsyslog TCP input per
transport; each input's ruleset forwards with one ``omfwd`` action, so every line must reach
the node exactly once, over the transport its input names. TLS uses rsyslog's gnutls driver,
trusting the node's self-signed certificate from ``<data_dir>/tls/`` by name (``localhost``).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import time
from pathlib import Path

import pytest
from tests.helpers.ports import free_ports
from tests.helpers.sources import read_until

from logfactory.bus.base import TopicSpec
from logfactory.bus.local import LocalBus
from logfactory.collect.agent import RAW_TOPIC, Agent
from logfactory.collect.sources.syslog import SyslogSource
from logfactory.config import Config, NodeConfig, source_config
from logfactory.stats import StatsRegistry

pytestmark = pytest.mark.integration

RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
LOGGER = "/usr/bin/logger"
LINES = 200
# what each forwarding template looks like: RFC 5424 (HOST APP ...) or RFC 3164 framing with an
# RFC 3339 time (HOST TAG MSG; the TAG of a message that came in as RFC 5424 has no colon)
RFC5424 = re.compile(r"<\d+>1 \S+ (?P<host>\S+) (?P<app>\S+) \S+ \S+ \S+ (?P<msg>.*)")
FORWARD = re.compile(r"<\d+>\d{4}-\S+ (?P<host>\S+) (?P<app>[^:\[ ]+)(?:\[\d+\])?:? (?P<msg>.*)")

CONF = """
global(workDirectory="{work}" defaultNetstreamDriverCAFile="{ca}")
module(load="imtcp")
ruleset(name="to_udp") {{
  action(type="omfwd" target="127.0.0.1" port="{udp}" protocol="udp"
         template="RSYSLOG_ForwardFormat")
}}
ruleset(name="to_tcp") {{
  action(type="omfwd" target="127.0.0.1" port="{tcp}" protocol="tcp"
         TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
}}
ruleset(name="to_tls") {{
  action(type="omfwd" target="127.0.0.1" port="{tls}" protocol="tcp"
         StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/name"
         StreamDriverPermittedPeers="localhost"
         TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
}}
input(type="imtcp" address="127.0.0.1" port="{in_udp}" ruleset="to_udp")
input(type="imtcp" address="127.0.0.1" port="{in_tcp}" ruleset="to_tcp")
input(type="imtcp" address="127.0.0.1" port="{in_tls}" ruleset="to_tls")
"""


async def port_open(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            assert time.monotonic() < deadline, f"rsyslogd never listened on {port}"
            await asyncio.sleep(0.05)
            continue
        w.close()
        await w.wait_closed()
        return


async def logger(port: int, lines: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        LOGGER, "--server", "127.0.0.1", "--port", str(port), "--tcp", "--octet-count",
        "--rfc5424=notq", "-t", "lftest", "-f", str(lines),
    )  # fmt: skip
    assert await asyncio.wait_for(proc.wait(), 20) == 0


def test_rsyslog_forwards_over_udp_tcp_and_tls(tmp_path: Path, local_bus: LocalBus) -> None:
    local_bus.ensure_topic(TopicSpec(RAW_TOPIC, 4))
    source = source_config(
        type="syslog", name="syslog", tag="sys", listen="127.0.0.1:0",
        tls_listen="127.0.0.1:0",
    )  # fmt: skip
    config = Config(node=NodeConfig(data_dir=str(tmp_path / "data")), sources=[source])
    producer = local_bus.producer()
    registry = StatsRegistry("test")
    agent = Agent(config, producer, registry)
    transports = ("udp", "tcp", "tls")
    log_path = tmp_path / "rsyslogd.out"

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        rsyslogd: asyncio.subprocess.Process | None = None
        try:
            await asyncio.wait_for(agent.wait_ready(), 10)
            src = agent.sources[0]
            assert isinstance(src, SyslogSource)
            assert src.tls_cert is not None
            inputs = free_ports(3)
            work = tmp_path / "rsyslog-work"
            work.mkdir()
            conf = tmp_path / "rsyslog.conf"
            conf.write_text(
                CONF.format(
                    work=work, ca=src.tls_cert, udp=src.bound["udp"][1], tcp=src.bound["tcp"][1],
                    tls=src.bound["tls"][1], in_udp=inputs[0], in_tcp=inputs[1],
                    in_tls=inputs[2],
                )
            )  # fmt: skip
            with open(log_path, "wb") as out:
                rsyslogd = await asyncio.create_subprocess_exec(
                    RSYSLOGD, "-n", "-f", str(conf), "-i", str(tmp_path / "rsyslogd.pid"),
                    stdout=out, stderr=out,
                )  # fmt: skip
            for port in inputs:
                await port_open(port)
            for transport, port in zip(transports, inputs, strict=True):
                lines = tmp_path / f"{transport}.txt"
                lines.write_text("".join(f"{transport} line {i}\n" for i in range(LINES)))
                await logger(port, lines)
            await read_until(local_bus, LINES * len(transports))
        finally:
            if rsyslogd is not None and rsyslogd.returncode is None:
                rsyslogd.terminate()  # rsyslogd flushes its queues on SIGTERM
                await asyncio.wait_for(rsyslogd.wait(), 15)
            stop.set()
            await asyncio.wait_for(task, 20)

    try:
        asyncio.run(main())
    finally:
        producer.close()
    got = asyncio.run(read_until(local_bus, LINES * len(transports)))
    diagnostics = log_path.read_text(errors="replace")
    hostname = socket.gethostname()
    for transport in transports:
        records = [r for r in got if r.meta["transport"] == transport]
        pattern = FORWARD if transport == "udp" else RFC5424
        parsed = [pattern.fullmatch(r.line) for r in records]
        assert all(parsed), (transport, [r.line for r in records[:3]], diagnostics)
        messages = sorted(m["msg"] for m in parsed if m)
        # every line exactly once
        assert messages == sorted(f"{transport} line {i}" for i in range(LINES)), diagnostics
        assert {(m["host"], m["app"]) for m in parsed if m} == {(hostname, "lftest")}
        assert {r.host for r in records} == {hostname}
        assert {r.source for r in records} == {"sys"}
        assert all(r.meta["peer"].startswith("127.0.0.1:") for r in records)
    assert len(got) == LINES * len(transports)  # nothing else, nothing twice
    counters = registry.snapshot()["counters"]["source:syslog"]
    assert counters["received"] == LINES * len(transports)
    assert counters.get("rejected", 0) == 0
