"""How the node shares its descriptors between listeners, and what an idle timer spares.

The end-to-end behaviour (a flood of idle connections, the cap, the timeout) is in
tests/e2e/test_connection_limits.py; here the arithmetic of :func:`plan_connections` and the
one rule that must never break a healthy sender: a connection the node itself stopped reading
(backpressure) is not idle, however long it waits.
"""

from __future__ import annotations

import asyncio
import socket

import pytest
from tests.helpers.configs import source_of

from logfactory.collect.connections import DEFAULT_MAX_CONNECTIONS, ConnectionLimit
from logfactory.config import SocketSourceConfig, parse_config
from logfactory.node_limits import plan_connections, reserve

CONFIG = """
sources:
  - {type: syslog, name: small, listen: '127.0.0.1:5514', protocols: [tcp], max_connections: 50}
  - {type: raw, name: both, listen: '127.0.0.1:5515', protocols: [udp, tcp],
     tls_listen: '127.0.0.1:6515'}
  - {type: syslog, name: udp-only, listen: '127.0.0.1:5516', protocols: [udp]}
"""


def test_a_low_limit_is_shared_out_and_only_an_explicit_value_lowered_is_a_warning() -> None:
    config = parse_config(CONFIG, "node.yaml")
    plan = plan_connections(config, collectors=True, api=True, limit=1024, in_use=24)
    assert plan.reserve == reserve(1024) == 256
    # 744 left: "small" wants 50; the other three listeners ("both" has two) share 694
    assert plan.caps == {"small": 50, "both": 231, "api": 232}
    limits = [source_of(plan.config, SocketSourceConfig, i).max_connections for i in range(3)]
    assert limits == [50, 231, None]
    assert plan.config.http.max_connections == 232
    assert plan.warnings == []  # defaults lowered: the banner's limits line says so

    config = parse_config(CONFIG.replace("max_connections: 50", "max_connections: 900"), "n.yaml")
    plan = plan_connections(config, collectors=True, api=True, limit=1024, in_use=24)
    assert plan.caps == {"small": 186, "both": 186, "api": 186}
    assert len(plan.warnings) == 1
    assert plan.warnings[0].startswith("n.yaml: sources[0].max_connections: at most 186")


def test_with_room_every_listener_keeps_what_it_asks() -> None:
    config = parse_config(CONFIG, "node.yaml")
    plan = plan_connections(config, collectors=True, api=False, limit=1 << 20, in_use=30)
    assert plan.caps == {"small": 50, "both": DEFAULT_MAX_CONNECTIONS}
    assert plan.config.http.max_connections is None  # no API in this process
    assert plan.warnings == []


class _Held(asyncio.Protocol):
    """A source under backpressure: it stops reading as soon as the connection is made."""

    transports: list[asyncio.BaseTransport] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.pause_reading()  # type: ignore[attr-defined]
        self.transports.append(transport)


@pytest.mark.timeout(60)
def test_a_connection_the_node_stopped_reading_is_not_idle() -> None:
    async def main() -> tuple[bool, bool, int]:
        loop = asyncio.get_running_loop()
        limit = ConnectionLimit("test", 10, 0.2)
        held_srv = await loop.create_server(lambda: limit.protocol(_Held()), "127.0.0.1", 0)
        quiet_srv = await loop.create_server(
            lambda: limit.protocol(asyncio.Protocol()), "127.0.0.1", 0
        )
        held = socket.create_connection(held_srv.sockets[0].getsockname()[:2])
        quiet = socket.create_connection(quiet_srv.sockets[0].getsockname()[:2])
        for sock in (held, quiet):
            sock.setblocking(False)
        held.sendall(b"x" * 100)  # something waits to be read: the node is holding it back
        # the quiet one, connected later with the same timeout, is closed after the held one's
        # timer was due: by then the held one would have been closed too
        closed = await loop.sock_recv(quiet, 1) == b""
        try:
            still_open = held.recv(1) != b""
        except BlockingIOError:
            still_open = True
        for sock in (held, quiet):
            sock.close()
        for transport in _Held.transports:
            transport.close()
        for srv in (held_srv, quiet_srv):
            srv.close()
            await srv.wait_closed()
        return closed, still_open, limit.timed_out

    closed, still_open, timed_out = asyncio.run(main())
    assert closed
    assert still_open
    assert timed_out == 1
