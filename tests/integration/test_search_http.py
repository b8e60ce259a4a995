"""The search routes under a real uvicorn server, over a real socket: an export arrives as a
chunked stream (no Content-Length: it is not held whole), zstd-compressed when asked, decoding
to the plain export; and the app's end closes the store reader the first query opened."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
import zstandard
from tests.helpers.clients import bearer
from tests.helpers.ports import free_port
from tests.helpers.search_api import build_world
from tests.helpers.waiting import wait_for

from logfactory.access import Role
from logfactory.access.store import AccessStore
from logfactory.api import NodeContext, create_app
from logfactory.bus.local import LocalBus
from logfactory.stats import StatsRegistry

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_an_export_streams_compressed_over_a_real_server(tmp_path: Path) -> None:
    world = build_world(tmp_path / "world", n=2000)
    bus = LocalBus(tmp_path / "bus")
    ctx = NodeContext(
        config=world.config(),
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
        base = f"http://localhost:{port}"
        headers = bearer(ctx, Role.VIEWER)

        def export(encoding: str) -> tuple[httpx.Headers, list[bytes]]:
            with httpx.stream(
                "GET", f"{base}/api/v1/export", headers={**headers, "Accept-Encoding": encoding},
                timeout=60,
            ) as r:  # fmt: skip
                assert r.status_code == 200, r.read()
                return r.headers, list(r.iter_raw())

        plain_headers, plain = export("identity")
        zstd_headers, packed = export("zstd")
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    assert not thread.is_alive()
    plain_body = b"".join(plain)
    lines = [json.loads(line) for line in plain_body.splitlines()]
    assert len(lines) == len(world.docs)
    for got in (plain_headers, zstd_headers):
        assert "content-length" not in got
        assert got["transfer-encoding"] == "chunked"
    assert zstd_headers["content-encoding"] == "zstd"
    assert "Accept-Encoding" in zstd_headers["vary"]
    decoded = zstandard.ZstdDecompressor().decompressobj().decompress(b"".join(packed))
    assert decoded == plain_body
    state = app.state.api
    assert state._closers == []  # the lifespan's end closed what the first query opened
    ctx.producer.close()
    ctx.access.close()
    bus.close()
