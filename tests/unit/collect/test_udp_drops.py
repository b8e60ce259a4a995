"""UDP loss in the kernel is counted: every datagram sent is either received or dropped."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.configs import source_as
from tests.helpers.sources import may_force_buffers

import logfactory.collect.sources.syslog as syslog_module
from logfactory.collect.sources.context import SourceContext
from logfactory.collect.sources.raw import RawSource
from logfactory.collect.sources.syslog import SyslogSource, udp_drops
from logfactory.collect.sources.syslog_udp import open_udp_socket
from logfactory.collect.udp_socket import DropWatch
from logfactory.config import SocketSourceConfig
from logfactory.record import Record
from logfactory.stats import StatsRegistry


def test_udp_drops_reads_the_kernel_counter() -> None:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        rx.bind(("127.0.0.1", 0))
        rx.setblocking(False)
        assert udp_drops(rx) == 0
        sent = 500
        for i in range(sent):
            tx.sendto(b"datagram %d" % i, rx.getsockname())
        received = 0
        while True:
            try:
                rx.recv(100)
            except BlockingIOError:
                break
            received += 1
        dropped = udp_drops(rx)
        assert dropped is not None
        assert dropped > 0
        assert received + dropped == sent
    finally:
        rx.close()
        tx.close()


def test_udp_drops_of_an_ipv6_socket() -> None:
    rx = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        rx.bind(("::1", 0))
        assert udp_drops(rx) == 0
    finally:
        rx.close()
    assert udp_drops(rx) is None  # closed: nothing to read, no error


@pytest.mark.parametrize("cls", [SyslogSource, RawSource])
def test_a_source_reports_what_the_kernel_dropped(
    monkeypatch: pytest.MonkeyPatch, cls: type[SyslogSource]
) -> None:
    """The source stops reading (its queue is full and emit is held), the small receive buffer
    overflows, then everything is released: received + dropped == sent, exactly."""
    monkeypatch.setattr(syslog_module, "QUEUE_HIGH", 1)
    monkeypatch.setattr(syslog_module, "QUEUE_LOW", 0)
    monkeypatch.setattr(syslog_module, "DROP_POLL_S", 0.02)
    config: dict[str, Any] = {"type": cls.kind, "listen": "127.0.0.1:0", "protocols": ["udp"]}
    registry = StatsRegistry("t")
    src = cls(
        source_as(SocketSourceConfig, **config, udp_rcvbuf=4096),
        SourceContext(Path("unused"), registry, name="u"),
    )
    got: list[Record] = []
    release = asyncio.Event()
    sent = 2000
    warnings_seen: list[str] = []

    class Emit:  # the agent's emit, reduced to waiting for ``release`` and keeping records
        async def __call__(self, record: Record) -> None:
            await self.many([record])

        async def many(self, records: Sequence[Record]) -> None:
            await release.wait()
            got.extend(records)

    emit = Emit()

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(src.run(emit, stop))
        await src.started()
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            tx.sendto(b"<13>Nov 22 00:15:51 h app: first", src.bound["udp"])
            async with asyncio.timeout(10):
                while not src._paused:  # the reader stopped: the kernel buffer takes the rest
                    await asyncio.sleep(0.005)
            for i in range(1, sent):
                tx.sendto(b"<13>Nov 22 00:15:51 h app: %d" % i, src.bound["udp"])
        finally:
            tx.close()
        release.set()
        async with asyncio.timeout(10):
            while len(got) + src.dropped < sent:
                await asyncio.sleep(0.01)
        warnings_seen.extend(text for name, text in registry.problems().items() if name == WARNING)
        stop.set()
        await asyncio.wait_for(task, 10)

    asyncio.run(main())
    assert src.dropped > 0
    assert len(got) + src.dropped == sent
    assert registry.snapshot()["counters"]["source:u"] == {"dropped": src.dropped}
    (warning,) = warnings_seen  # shown while running, taken down with the socket
    assert warning.startswith(
        f"{cls.kind} source 'u': the kernel dropped {src.dropped:,} UDP datagrams in the last"
    )
    assert registry.problems() == {}


WARNING = "warning:source:u:dropped"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fill(rx: socket.socket, n: int) -> None:
    """``n`` datagrams to ``rx``, which reads none: past its buffer the kernel drops them."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        for i in range(n):
            tx.sendto(b"<13>Nov 22 00:15:51 h app: %d" % i, rx.getsockname())


def test_drop_watch_counts_logs_once_per_run_and_warns_for_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry, clock = StatsRegistry("t"), Clock()
    rx = open_udp_socket("127.0.0.1", 0, 1024, "raw", "u")  # the kernel's least buffer
    watch = DropWatch(rx, kind="raw", name="u", registry=registry, clock=clock)
    try:
        with caplog.at_level(logging.INFO, logger="logfactory.collect.udp_socket"):
            assert watch.check() == 0
            assert registry.problems() == {}
            fill(rx, 200)
            first = watch.check()
            assert first > 0
            assert first == udp_drops(rx) == watch.total
            assert registry.snapshot()["counters"]["source:u"] == {"dropped": first}
            assert (
                f"dropped {first:,} UDP datagrams in the last minute"
                in registry.problems()[WARNING]
            )
            clock.now += 30
            fill(rx, 100)  # the buffer is still full: every one dropped
            assert watch.check() == 100
            assert f"dropped {first + 100:,} UDP" in registry.problems()[WARNING]
            clock.now += 30  # the first drops are a minute old now
            assert watch.check() == 0
            assert "dropped 100 UDP datagrams in the last minute" in registry.problems()[WARNING]
            clock.now += 30
            assert watch.check() == 0
            assert registry.problems() == {}  # a quiet minute: the warning is gone
            assert len(caplog.records) == 1  # one line for the run, the counter says the rest
            assert f"the kernel dropped {first} UDP datagrams" in caplog.records[0].getMessage()
            fill(rx, 10)
            assert watch.check() == 10
            assert len(caplog.records) == 2  # a new run is logged
            assert registry.snapshot()["counters"]["source:u"] == {"dropped": first + 110}
            watch.close()
            assert registry.problems() == {}
    finally:
        rx.close()


def test_the_receive_buffer_passes_rmem_max_when_privileged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rmem_max = int(Path("/proc/sys/net/core/rmem_max").read_text())
    want = 2 * rmem_max
    with caplog.at_level(logging.INFO, logger="logfactory.collect.sources.syslog"):
        sock = open_udp_socket("127.0.0.1", 0, want, "syslog", "big")
    try:
        got = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2  # Linux reports 2x
    finally:
        sock.close()
    if may_force_buffers():
        assert got == want
        assert "receive buffer" not in caplog.text
    else:  # capped, and the log says how to lift the cap
        assert got == rmem_max
        assert "raise net.core.rmem_max" in caplog.text
