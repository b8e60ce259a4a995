"""Compressed answers: zstd when the client accepts it, else gzip, else none; the decoded body
is the plain one; ``Vary: Accept-Encoding``; small answers and Server-Sent Events are never
compressed. The raw bytes are read (httpx would decode them itself) and decoded here."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
import zstandard
from tests.helpers.clients import TestClient
from tests.helpers.search_api import SearchWorld, build_world

from logfactory.bus.base import TopicSpec
from logfactory.event import Event, Header, encode_event, format_time


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> SearchWorld:
    return build_world(tmp_path_factory.mktemp("compress"), n=300)


def _raw(client: TestClient, path: str, params: dict[str, Any], accept: str) -> tuple[Any, bytes]:
    with client.stream("GET", path, params=params, headers={"Accept-Encoding": accept}) as r:
        return r, b"".join(r.iter_raw())


def _decode(encoding: str | None, body: bytes) -> bytes:
    if encoding == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    if encoding == "gzip":
        return gzip.decompress(body)
    assert encoding is None, encoding
    return body


def _search_json(body: bytes) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(body)
    answer.pop("took_ms")
    return answer


@pytest.mark.parametrize(
    ("accept", "coding"),
    [
        ("zstd", "zstd"),
        ("gzip", "gzip"),
        ("gzip, deflate, br, zstd", "zstd"),  # a browser's: zstd preferred
        ("gzip;q=1.0, zstd;q=0", "gzip"),
        ("identity", None),
        ("br", None),  # brotli is left off
    ],
)
def test_search_answers_are_compressed_as_accepted(
    world: SearchWorld, tmp_path: Path, accept: str, coding: str | None
) -> None:
    params = {"limit": 200}
    with world.client(tmp_path) as (client, _):
        plain, plain_body = _raw(client, "/api/v1/search", params, "identity")
        r, body = _raw(client, "/api/v1/search", params, accept)
    assert plain.headers.get("content-encoding") is None
    assert len(plain_body) > 10_000
    assert r.headers.get("content-encoding") == coding
    assert "Accept-Encoding" in r.headers["vary"]
    decoded = _decode(coding, body)
    assert _search_json(decoded) == _search_json(plain_body)
    if coding is not None:
        assert len(body) < len(plain_body) / 3


@pytest.mark.parametrize("coding", ["zstd", "gzip"])
@pytest.mark.parametrize("fmt", ["ndjson", "csv"])
def test_exports_are_compressed_and_decode_to_the_plain_export(
    world: SearchWorld, tmp_path: Path, coding: str, fmt: str
) -> None:
    params = {"format": fmt}
    with world.client(tmp_path) as (client, _):
        _, plain = _raw(client, "/api/v1/export", params, "identity")
        r, body = _raw(client, "/api/v1/export", params, coding)
    assert r.headers["content-encoding"] == coding
    assert _decode(coding, body) == plain
    assert len(body) < len(plain) / 3


def test_a_small_answer_is_sent_as_it_is(world: SearchWorld, tmp_path: Path) -> None:
    with world.client(tmp_path) as (client, _):
        r, body = _raw(client, "/api/v1/aggregate", {"op": "count"}, "zstd, gzip")
    assert r.status_code == 200
    assert r.headers.get("content-encoding") is None
    assert json.loads(body)["value"] == len(world.docs)


def test_server_sent_events_are_never_compressed(world: SearchWorld, tmp_path: Path) -> None:
    with world.client(tmp_path) as (client, ctx):
        ctx.bus.ensure_topic(TopicSpec("events.ALERT", 1))
        producer = ctx.bus.producer()
        try:
            for i in range(40):
                header = Header(id=f"ALERT-{i}", time=format_time(world.now_ns), type="ALERT")
                event = Event(header=header, body={"note": "y" * 80})
                producer.produce("events.ALERT", encode_event(event), b"h")
            producer.flush()
        finally:
            producer.close()
        params = {"types": "ALERT", "from": "earliest", "idle": "0.2"}
        r, body = _raw(client, "/api/v1/subscribe", params, "zstd, gzip")
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers.get("content-encoding") is None
    assert body.count(b"\ndata: ") + body.startswith(b"data: ") == 40
    assert len(body) > 4000
