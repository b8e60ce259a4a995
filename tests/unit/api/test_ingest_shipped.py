"""POST /api/v1/ingest with an edge collector's own records (bus.type: http on the edge)."""

from __future__ import annotations

import msgspec
import zstandard
from tests.helpers.clients import TestClient, raw_records

from logfactory.api import NodeContext
from logfactory.bus.http_ship import RECORDS_MEDIA
from logfactory.bus.local import LocalBus
from logfactory.record import encode_record, make_record

HEADERS = {"Content-Type": RECORDS_MEDIA, "Content-Encoding": "zstd"}


def _body(pairs: list[tuple[bytes | None, bytes]]) -> bytes:
    return zstandard.ZstdCompressor().compress(msgspec.msgpack.encode(pairs))


def test_shipped_records_are_written_as_the_edge_made_them(
    client: tuple[TestClient, NodeContext], local_bus: LocalBus
) -> None:
    c, ctx = client
    one = make_record("syslog", "edge-host", "a line", {"transport": "udp"}, received=123)
    two = make_record("sce", "other", b"\xff raw bytes", {})
    body = _body([(b"edge-host", encode_record(one)), (b"k", b"\x93garbage"),
                  (b"other", encode_record(two))])  # fmt: skip
    r = c.post("/api/v1/ingest", content=body, headers=HEADERS)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["accepted"] == 2
    assert answer["rejected"] == 1
    assert answer["errors"][0]["record"] == 2
    assert "not a logfactory record" in answer["errors"][0]["error"]
    got = raw_records(local_bus)
    assert [(k, rec) for k, rec in got] == [(b"edge-host", one), (b"other", two)]
    assert ctx.registry.snapshot()["counters"]["source:http"]["received"] == 2


def test_a_body_that_is_not_a_batch_is_refused_whole(
    client: tuple[TestClient, NodeContext], local_bus: LocalBus
) -> None:
    c, _ctx = client
    body = zstandard.ZstdCompressor().compress(b"not msgpack at all")
    r = c.post("/api/v1/ingest", content=body, headers=HEADERS)
    assert r.status_code == 400
    assert "not a batch of shipped records" in r.json()["error"]
    assert raw_records(local_bus) == []
