"""The head bound of :mod:`logfactory.api.request_heads`, read by read: what counts as the head
(up to its blank line, wherever the reads split it) and what never does (the body). The real
server's behaviour is in tests/integration/test_api_request_heads.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send
from tests.helpers.waiting import wait_for_async
from uvicorn.server import ServerState

from logfactory.api.request_heads import bounded_h11

LIMIT = 1024


async def ok(scope: Scope, receive: Receive, send: Send) -> None:
    """An app that reads the whole body and answers 200 with its length."""
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


class Transport(asyncio.Transport):
    """What the protocol writes, and whether it closed the connection."""

    def __init__(self) -> None:
        super().__init__()
        self.out = b""
        self.closed = False
        self.armed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.out += bytes(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("192.0.2.9", 40000), "sockname": ("127.0.0.1", 8080)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def feed(
    *reads: bytes, timeout: float = 0.0, until_closed: bool = False
) -> tuple[Transport, list[str]]:
    """A fresh connection fed ``reads`` one by one (the app given a turn after each); what
    it wrote and the counters it heard. ``until_closed``: then wait (30 s at most) for the
    connection to be closed, e.g. by the head's timer. ``armed`` (on the returned transport)
    says whether a head timer was still pending when the reads were done."""
    heard: list[str] = []

    async def main() -> Transport:
        config = uvicorn.Config(
            ok, h11_max_incomplete_event_size=LIMIT, lifespan="off", log_config=None,
            access_log=False,
        )  # fmt: skip
        config.load()
        protocol_class = bounded_h11(LIMIT, timeout, heard.append)
        proto = protocol_class(config=config, server_state=ServerState(), app_state={})
        transport = Transport()
        proto.connection_made(transport)
        for data in reads:
            if transport.closed:
                break
            proto.data_received(data)
            for _ in range(5):
                await asyncio.sleep(0)
        transport.armed = proto._head_timer is not None
        if until_closed:
            await wait_for_async(lambda: transport.closed, 30, "the head's timer to close it")
        proto.connection_lost(None)
        return transport

    return asyncio.run(main()), heard


def head(size: int, end: bytes = b"\r\n\r\n", body: int = 0) -> bytes:
    """A request head of exactly ``size`` bytes (its blank line included)."""
    start = b"POST / HTTP/1.1\r\nHost: t\r\ncontent-length: %d\r\nX-Pad: " % body
    return start + b"a" * (size - len(start) - len(end)) + end


def test_a_head_at_the_bound_with_a_large_body_in_the_same_read_is_served() -> None:
    transport, heard = feed(head(LIMIT, body=50_000) + b"b" * 50_000)
    assert transport.out.startswith(b"HTTP/1.1 200")
    assert transport.out.endswith(b"\r\n50000\r\n0\r\n\r\n")  # the app read the whole body
    assert heard == []


@pytest.mark.parametrize("cut", [1, 2, 3])  # inside "\r\n\r\n", wherever the reads split it
def test_the_blank_line_split_across_reads_still_ends_the_head(cut: int) -> None:
    whole = head(LIMIT, body=5_000)
    transport, heard = feed(whole[:-cut], whole[-cut:] + b"b" * 5_000)
    assert transport.out.startswith(b"HTTP/1.1 200")
    assert heard == []


def test_bare_newlines_end_a_head_as_h11_reads_it() -> None:
    transport, _ = feed(head(LIMIT, end=b"\n\n", body=3_000).replace(b"\r\n", b"\n") + b"b" * 3000)
    assert transport.out.startswith(b"HTTP/1.1 200")


def test_a_head_one_byte_over_is_431_in_however_many_reads() -> None:
    whole = head(LIMIT + 1)
    transport, heard = feed(*(whole[i : i + 100] for i in range(0, len(whole), 100)))
    assert transport.out.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert b"larger than 1024 bytes" in transport.out
    assert transport.closed
    assert heard == ["limited_header_bytes"]


def test_the_second_request_of_a_connection_is_bounded_like_the_first() -> None:
    first = head(200)
    transport, heard = feed(first, head(LIMIT + 500))
    assert transport.out.startswith(b"HTTP/1.1 200")
    assert b"HTTP/1.1 431" in transport.out
    assert heard == ["limited_header_bytes"]


def test_a_head_that_does_not_arrive_in_time_is_408() -> None:
    transport, heard = feed(head(500)[:100], timeout=0.05, until_closed=True)
    assert transport.out.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert transport.closed
    assert heard == ["connections_timed_out"]


def test_a_whole_head_arms_no_deadline() -> None:
    transport, heard = feed(head(300), timeout=0.05)
    assert not transport.armed  # nothing left that could answer 408 later
    assert transport.out.startswith(b"HTTP/1.1 200")
    assert b"408" not in transport.out
    assert heard == []
