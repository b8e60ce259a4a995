"""A client that hangs up while its body is being read (a partial POST, then the connection
gone) is the client's doing: the node answers nothing, logs no traceback, takes nothing, and
serves the next request. Found by hand: a partial login body gave "Exception in ASGI
application" with a ClientDisconnect traceback; ingest and reviews read bodies the same way."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from starlette.types import Message
from tests.helpers.clients import make_client, raw_records

from logfactory.bus.local import LocalBus
from logfactory.config import Config

ROUTES = [
    ("/api/v1/ingest", "text/plain"),
    ("/api/v1/auth/login", "application/json"),
    ("/api/v1/patterns/0123456789abcdef/review", "application/json"),
    ("/api/v1/users", "application/json"),
]


@pytest.mark.parametrize(("path", "content_type"), ROUTES, ids=[p for p, _ in ROUTES])
def test_a_client_gone_mid_body_is_no_error(
    tmp_path: Path,
    local_bus: LocalBus,
    caplog: pytest.LogCaptureFixture,
    path: str,
    content_type: str,
) -> None:
    c, ctx = make_client(tmp_path, local_bus, Config())
    token = c.headers["Authorization"].encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"localhost"),
            (b"authorization", token),
            (b"content-type", content_type.encode()),
            (b"content-length", b"1000"),
        ],
        "client": ("192.0.2.9", 40000),
        "server": ("127.0.0.1", 8080),
        "state": {},
    }
    incoming: list[Message] = [
        {"type": "http.request", "body": b'{"user": "adm', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    async def call() -> None:
        await c.app(scope, receive, send)

    with caplog.at_level(logging.DEBUG):
        asyncio.run(call())  # raises nothing

    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert raw_records(local_bus) == []  # nothing of the partial body taken
    with c:
        assert c.get("/api/v1/auth/me").status_code == 200  # and the next request is served
    ctx.producer.close()
