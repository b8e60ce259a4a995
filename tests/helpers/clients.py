"""The HTTP API in-process: starlette's TestClient on a node context over a local bus."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send
from tests.helpers.bus import read_all

from logfactory.access import Principal, Role
from logfactory.api import NodeContext, create_app
from logfactory.bus.base import Producer
from logfactory.bus.local import LocalBus
from logfactory.config import Config
from logfactory.record import Record, decode_record
from logfactory.stats import StatsRegistry

with warnings.catch_warnings():
    # starlette 1.x prefers httpx2 (not a project dependency); its TestClient works on httpx
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient as TestClient  # re-exported for the API tests


def make_client(
    tmp_path: Path, bus: LocalBus, config: Config, producer: Producer | None = None
) -> tuple[TestClient, NodeContext]:
    """The API of ``config`` on ``bus`` (through ``producer``, else a producer of the bus's own),
    its requests coming from 192.0.2.9:40000."""
    ctx = NodeContext(
        config=config,
        bus=bus,
        producer=bus.producer() if producer is None else producer,
        registry=StatsRegistry("node"),
        stats_dir=tmp_path / "stats",
        started=time.time(),
    )
    return TestClient(create_app(ctx), client=("192.0.2.9", 40000)), ctx


PRINCIPAL_HEADER = b"x-test-principal"


class TestPrincipal:
    """Test only, until requests carry real credentials: a request with the header
    ``x-test-principal: KEY`` comes from a viewer whose credential's key is ``KEY`` (set as
    ``request.state.principal``, where the API's credential check puts it); one without it
    stays anonymous. Wrap an app with it before its first request:
    ``app.add_middleware(TestPrincipal)``."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == PRINCIPAL_HEADER:
                    key = value.decode()
                    principal = Principal("token", key, key, Role.VIEWER)
                    scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


def raw_records(bus: LocalBus) -> list[tuple[bytes | None, Record]]:
    """(key, record) of everything on logs.raw, in the order the node received the lines."""
    out = [(m.key, decode_record(m.value)) for m in read_all(bus, "logs.raw")]
    return sorted(out, key=lambda kr: kr[1].received)
