"""The HTTP API in-process: starlette's TestClient on a node context over a local bus.

The client carries an admin API token of the context's access store by default (every route
but health needs a credential); :func:`bearer` makes headers of other roles and scopes. Its
requests go to ``http://localhost`` (a Host every node serves), from 192.0.2.9:40000.
:func:`make_client` builds the node context too; :func:`api_client` is the same client for a
context a test built itself (its own registry, start time or stats).
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

from tests.helpers.bus import read_all

from logfactory.access import Role
from logfactory.access.store import AccessStore
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
    tmp_path: Path,
    bus: LocalBus,
    config: Config,
    producer: Producer | None = None,
    *,
    role: Role | None = Role.ADMIN,
    raise_server_exceptions: bool = True,
) -> tuple[TestClient, NodeContext]:
    """The API of ``config`` on ``bus`` (through ``producer``, else a producer of the bus's own),
    its requests coming from 192.0.2.9:40000 with a token of ``role`` (None: no credential).
    ``raise_server_exceptions=False``: an exception is a 500, as a deployed node answers."""
    ctx = NodeContext(
        config=config,
        bus=bus,
        producer=bus.producer() if producer is None else producer,
        registry=StatsRegistry("node"),
        stats_dir=tmp_path / "stats",
        started=time.time(),
        access=AccessStore.in_dir(tmp_path / "access"),
    )
    return api_client(ctx, role=role, raise_server_exceptions=raise_server_exceptions), ctx


def api_client(
    ctx: NodeContext, *, role: Role | None = Role.ADMIN, raise_server_exceptions: bool = True
) -> TestClient:
    """A client of ``create_app(ctx)`` from 192.0.2.9:40000 with a new token of ``role`` in
    ``ctx``'s store (None: no credential)."""
    client = TestClient(
        create_app(ctx),
        client=("192.0.2.9", 40000),
        raise_server_exceptions=raise_server_exceptions,
    )
    if role is not None:
        client.headers.update(bearer(ctx, role))
    return client


def bearer(ctx: NodeContext, role: Role, scopes: tuple[str, ...] = ()) -> dict[str, str]:
    """``Authorization`` of a new token of ``role`` (and ``scopes``) in ``ctx``'s store."""
    token, _ = ctx.access.create_token(f"test {role}", role, "test", scopes=scopes)
    return {"Authorization": f"Bearer {token}"}


def raw_records(bus: LocalBus) -> list[tuple[bytes | None, Record]]:
    """(key, record) of everything on logs.raw, in the order the node received the lines."""
    out = [(m.key, decode_record(m.value)) for m in read_all(bus, "logs.raw")]
    return sorted(out, key=lambda kr: kr[1].received)
