"""The API's plain-HTTP connections make uvicorn's protocol only at their first byte
(``node_limits.LazyHttp``): a flood of silent connections, evicted and re-opened, must cost the
node no protocol set-up, while a connection that speaks gets a protocol told of it before its
first byte, and told of its end."""

from __future__ import annotations

import asyncio

from tests.helpers.waiting import wait_for_async

from logfactory.collect.connections import ConnectionLimit
from logfactory.node_limits import LazyHttp


class Recorder(asyncio.Protocol):
    def __init__(self, made: list[Recorder]) -> None:
        made.append(self)
        self.events: list[str] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.events.append("made")

    def data_received(self, data: bytes) -> None:
        self.events.append(f"data:{data.decode()}")

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append("lost")


async def scenario() -> tuple[int, list[str], int, int]:
    made: list[Recorder] = []
    limit = ConnectionLimit("test", max_connections=2, idle_timeout=0)
    server = await asyncio.get_running_loop().create_server(
        lambda: LazyHttp(limit, lambda: Recorder(made)), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    # three silent connections on a listener of two: one is evicted, none makes a protocol
    silent = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
    await wait_for_async(lambda: limit.evicted == 1, 20, "an eviction")
    silent_made = len(made)
    for _, writer in silent:
        writer.close()
    await wait_for_async(lambda: not limit.open, 20, "the silent connections to be released")
    # one that speaks: its protocol is made, told of the connection, then of the bytes, then
    # of the end
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET")
    await writer.drain()
    await wait_for_async(lambda: bool(made) and "data:GET" in made[0].events, 20, "the bytes")
    writer.close()
    await wait_for_async(lambda: "lost" in made[0].events, 20, "the end")
    server.close()
    await server.wait_closed()
    return silent_made, made[0].events, len(made), len(limit.open)


def test_silent_connections_make_no_protocol_and_a_speaking_one_gets_everything() -> None:
    silent_made, events, total_made, still_open = asyncio.run(scenario())
    assert silent_made == 0
    assert events == ["made", "data:GET", "lost"]
    assert total_made == 1
    assert still_open == 0
