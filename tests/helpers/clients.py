"""The HTTP API in-process: starlette's TestClient on a node context over a local bus."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

from tests.helpers.bus import read_all

from logfactory.api import NodeContext, create_app
from logfactory.bus.base import Producer
from logfactory.bus.local import LocalBus
from logfactory.config import Config
from logfactory.record import Record, decode_record
from logfactory.stats import StatsRegistry

with warnings.catch_warnings():
    # starlette 1.x prefers httpx2 (not a project dependency); its TestClient works on httpx
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient as _StarletteClient


class TestClient(_StarletteClient):
    """starlette's TestClient, addressing the node as ``http://localhost`` (a name every node's
    default Host allow-list holds, see ``logfactory.api.hosts``) instead of ``testserver``,
    which the node has no reason to answer and does not."""

    def __init__(self, app: Any, base_url: str = "http://localhost", **kwargs: Any) -> None:
        super().__init__(app, base_url=base_url, **kwargs)


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


def raw_records(bus: LocalBus) -> list[tuple[bytes | None, Record]]:
    """(key, record) of everything on logs.raw, in the order the node received the lines."""
    out = [(m.key, decode_record(m.value)) for m in read_all(bus, "logs.raw")]
    return sorted(out, key=lambda kr: kr[1].received)
