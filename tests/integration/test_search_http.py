"""The search routes under a real uvicorn server, over a real socket: an export arrives as a
chunked stream (no Content-Length: it is not held whole), zstd-compressed when asked, decoding
to the plain export; the app's end closes the store reader the first query opened; and many
clients searching at once through the one shared reader get the answers one alone gets."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgspec
import pytest
import uvicorn
import zstandard
from fastapi import FastAPI
from tests.helpers.clients import bearer
from tests.helpers.ports import free_port
from tests.helpers.search_api import SearchWorld, build_world, oracle_ids
from tests.helpers.waiting import wait_for

from logfactory.access import Role
from logfactory.access.store import AccessStore
from logfactory.api import NodeContext, create_app
from logfactory.bus.local import LocalBus
from logfactory.stats import StatsRegistry

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@dataclass
class Served:
    app: FastAPI
    base: str
    headers: dict[str, str]


@contextmanager
def served(world: SearchWorld, tmp_path: Path) -> Iterator[Served]:
    """The API over ``world``'s store under uvicorn (lifespan on), stopped at the end."""
    bus = LocalBus(tmp_path / "bus")
    config = world.config(max_results=1000)
    # the clients below are one credential querying at once: lift its rate limit
    http = msgspec.structs.replace(config.http, query_rate=1000.0, query_burst=1000)
    ctx = NodeContext(
        config=msgspec.structs.replace(config, http=http),
        bus=bus,
        producer=bus.producer(),
        registry=StatsRegistry("node"),
        stats_dir=tmp_path / "stats",
        started=time.time(),
        access=AccessStore.in_dir(tmp_path / "access"),
    )
    app = create_app(ctx)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, 30, "the server to listen")
        yield Served(app, f"http://localhost:{port}", bearer(ctx, Role.VIEWER))
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        ctx.producer.close()
        ctx.access.close()
        bus.close()
    assert not thread.is_alive()


def test_an_export_streams_compressed_over_a_real_server(tmp_path: Path) -> None:
    world = build_world(tmp_path / "world", n=2000)

    def export(api: Served, encoding: str) -> tuple[httpx.Headers, bytes]:
        headers = {**api.headers, "Accept-Encoding": encoding}
        with httpx.stream("GET", f"{api.base}/api/v1/export", headers=headers, timeout=60) as r:
            assert r.status_code == 200, r.read()
            return r.headers, b"".join(r.iter_raw())

    with served(world, tmp_path) as api:
        plain_headers, plain = export(api, "identity")
        zstd_headers, packed = export(api, "zstd")
    assert len([json.loads(line) for line in plain.splitlines()]) == len(world.docs)
    for got in (plain_headers, zstd_headers):
        assert "content-length" not in got
        assert got["transfer-encoding"] == "chunked"
    assert zstd_headers["content-encoding"] == "zstd"
    assert "Accept-Encoding" in zstd_headers["vary"]
    assert zstandard.ZstdDecompressor().decompressobj().decompress(packed) == plain
    assert api.app.state.api._closers == []  # the lifespan's end closed the reader


def test_clients_searching_at_once_get_what_one_alone_gets(tmp_path: Path) -> None:
    world = build_world(tmp_path / "world", n=1500)
    hosts = sorted({d.host for d in world.docs})
    queries = [f"host:{h}" for h in hosts] + ["severity:error", "kind:event", "fail*", ""]
    expected = {q: oracle_ids(world, q) for q in queries}

    with served(world, tmp_path) as api, httpx.Client(headers=api.headers, timeout=60) as http:

        def ask(q: str) -> tuple[str, list[str]]:
            r = http.get(f"{api.base}/api/v1/search", params={"q": q, "limit": 1000})
            assert r.status_code == 200, r.text
            return q, [h["id"] for h in r.json()["hits"]]

        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(ask, queries * 4))
    assert len(answers) == 4 * len(queries)
    for q, ids in answers:
        assert ids == expected[q][:1000], q
