"""HTTP ingest: encodings, body formats, per-source tokens, overload (429) and durability."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lz4.frame  # type: ignore[import-untyped]  # lz4 ships no type information
import pytest
import zstandard
from tests.helpers.clients import TestClient, make_client
from tests.helpers.waiting import wait_for

from logfactory.api import NodeContext
from logfactory.api.ingest_body import (
    BadBody,
    BodyTooLarge,
    UnsupportedEncoding,
    decompress,
    encoding_of,
    split_body,
)
from logfactory.api.routes import ingest as api_ingest
from logfactory.bus.local import LocalBus
from logfactory.config import Config, parse_config
from logfactory.record import Record, decode_record


class FakeProducer:
    """Keeps what it is given; ``flush`` can be held back; ``pending`` is set by the test."""

    def __init__(self) -> None:
        self.produced: list[bytes] = []
        self.durable = 0  # how many of ``produced`` a finished flush covered
        self.backlog = 0
        self.spool: dict[str, Any] | None = None
        self.release = threading.Event()
        self.release.set()
        self.flushing = threading.Event()

    def produce(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        self.produced.append(value)

    def flush(self, timeout: float | None = None) -> None:
        mark = len(self.produced)
        self.flushing.set()
        assert self.release.wait(10)
        self.durable = mark

    def pending(self) -> int:
        return self.backlog

    def state(self) -> dict[str, Any]:
        return self.spool or {"bytes": 0, "max_bytes": 100}

    def close(self) -> None:
        return None

    def lines(self) -> list[str]:
        return [decode_record(v).line for v in self.produced]


@pytest.fixture
def fake() -> FakeProducer:
    return FakeProducer()


@pytest.fixture
def client(
    tmp_path: Path, local_bus: LocalBus, fake: FakeProducer
) -> Iterator[tuple[TestClient, NodeContext]]:
    c, ctx = make_client(tmp_path, local_bus, Config(), fake)
    with c:
        yield c, ctx


LINES = [f"line {i} with some text" for i in range(200)]
TEXT = ("\n".join(LINES) + "\n").encode()


def _zstd_streamed(data: bytes) -> bytes:
    """A zstd frame without a content size in its header, as streaming compressors write."""
    cobj = zstandard.ZstdCompressor().compressobj()
    return cobj.compress(data) + cobj.flush()


ENCODERS = {
    "gzip": gzip.compress,
    "zstd": zstandard.ZstdCompressor().compress,
    "lz4": lz4.frame.compress,
}


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", gzip.compress(TEXT)),
        ("x-gzip", gzip.compress(TEXT[:100]) + gzip.compress(TEXT[100:])),  # two members
        ("zstd", zstandard.ZstdCompressor().compress(TEXT)),
        ("zstd", _zstd_streamed(TEXT[:100]) + _zstd_streamed(TEXT[100:])),  # two frames
        ("lz4", lz4.frame.compress(TEXT)),
        ("lz4", lz4.frame.compress(TEXT[:100]) + lz4.frame.compress(TEXT[100:])),
        ("identity", TEXT),
    ],
)
def test_every_encoding_delivers_every_line(
    client: tuple[TestClient, NodeContext], fake: FakeProducer, encoding: str, body: bytes
) -> None:
    c, ctx = client
    r = c.post(
        "/api/v1/ingest",
        content=body,
        headers={"Content-Encoding": encoding, "Content-Type": "text/plain"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == len(LINES)
    assert fake.lines() == LINES
    counters = ctx.registry.snapshot()["counters"]["source:http"]
    assert counters["bytes"] == len(TEXT)
    assert counters["received"] == len(LINES)


@pytest.mark.parametrize("encoding", ["gzip", "zstd", "lz4"])
def test_corrupt_or_truncated_bodies_are_400_with_the_reason(
    client: tuple[TestClient, NodeContext], fake: FakeProducer, encoding: str
) -> None:
    c, ctx = client
    good = ENCODERS[encoding](TEXT)
    for body, reason in ((b"\x00garbage" * 8, "does not decompress"), (good[:-9], "truncated")):
        r = c.post("/api/v1/ingest", content=body, headers={"Content-Encoding": encoding})
        assert r.status_code == 400
        assert encoding in r.json()["error"]
        assert reason in r.json()["error"]
    assert fake.produced == []
    assert ctx.registry.snapshot()["counters"]["source:http"]["refused"] == 2


def test_unknown_or_stacked_encodings_are_415(client: tuple[TestClient, NodeContext]) -> None:
    c, _ = client
    for enc in ("br", "gzip, zstd", "deflate"):
        r = c.post("/api/v1/ingest", content=b"x", headers={"Content-Encoding": enc})
        assert r.status_code == 415
        assert "gzip, zstd or lz4" in r.json()["error"]


@pytest.mark.parametrize("encoding", ["gzip", "zstd", "lz4"])
def test_decompression_bombs_stop_at_the_limit(encoding: str) -> None:
    inflated = b"\0" * (64 << 20)
    bomb = ENCODERS[encoding](inflated)
    assert len(bomb) < 1 << 20
    with pytest.raises(BodyTooLarge):
        decompress(bomb, encoding_of(encoding), 1 << 20)
    assert decompress(bomb, encoding_of(encoding), 64 << 20) == inflated


def test_a_bomb_over_http_is_413_and_nothing_lands(
    tmp_path: Path, local_bus: LocalBus, fake: FakeProducer
) -> None:
    config = parse_config("sources:\n  - {type: http, max_body_bytes: 1MiB}\n", "t.yaml")
    c, ctx = make_client(tmp_path, local_bus, config, fake)
    with c:
        for enc in ("gzip", "zstd", "lz4"):
            bomb = ENCODERS[enc](b"a\n" * (8 << 20))
            r = c.post("/api/v1/ingest", content=bomb, headers={"Content-Encoding": enc})
            assert r.status_code == 413, enc
        too_long = b"z" * ((1 << 20) + 1)  # uncompressed, over the limit as sent
        assert c.post("/api/v1/ingest", content=too_long).status_code == 413
    assert fake.produced == []
    assert ctx.registry.snapshot()["counters"]["source:http"]["refused"] == 4


def test_json_array_of_objects_and_strings(
    client: tuple[TestClient, NodeContext], fake: FakeProducer
) -> None:
    c, _ = client
    body = [{"line": "obj", "host": "h1", "level": "warn"}, "a plain string", 5, {"x": 1}, ""]
    r = c.post("/api/v1/ingest", json=body)
    assert r.status_code == 200
    assert r.json()["accepted"] == 2
    assert r.json()["rejected"] == 2
    assert [e["item"] for e in r.json()["errors"]] == [3, 4]
    records = [decode_record(v) for v in fake.produced]
    assert [(rec.host, rec.line) for rec in records] == [
        ("h1", "obj"),
        ("192.0.2.9", "a plain string"),
    ]
    assert records[0].meta == {"level": "warn", "peer": "192.0.2.9"}


def test_a_broken_json_array_is_400(client: tuple[TestClient, NodeContext]) -> None:
    c, _ = client
    r = c.post(
        "/api/v1/ingest", content=b'[{"line": "a"}, ', headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400
    assert "not a JSON array" in r.json()["error"]


def test_format_follows_the_content_type_and_falls_back_to_the_body() -> None:
    ndjson = b'{"line": "a"}\n{"line": "b"}\n'
    pretty = b'{\n  "line": "one object"\n}\n'
    assert split_body(ndjson, "application/x-ndjson") == ("ndjson", ndjson)
    assert split_body(ndjson, "application/json") == ("ndjson", ndjson)
    assert split_body(ndjson, None) == ("ndjson", ndjson)
    assert split_body(ndjson, "text/plain") == ("text", ndjson)
    assert split_body(pretty, "application/json") == ("items", [{"line": "one object"}])
    assert split_body(b'["x", {"line": "y"}]', None) == ("items", ["x", {"line": "y"}])
    assert split_body(b"[INFO] a bracketed log line\n", None)[0] == "text"
    assert split_body(b"{curly} log text\n", "application/x-www-form-urlencoded")[0] == "text"
    assert split_body(b"plain\n", "application/octet-stream")[0] == "text"
    with pytest.raises(BadBody):
        split_body(b"[1, 2", "application/vnd.x+json")
    with pytest.raises(UnsupportedEncoding):
        encoding_of("compress")


def test_ndjson_gzip_and_zstd_end_to_end_on_the_real_bus(
    tmp_path: Path, local_bus: LocalBus
) -> None:
    producer = local_bus.producer()
    c, _ = make_client(tmp_path, local_bus, Config(), producer)
    body = "".join(json.dumps({"line": f"n{i}", "host": f"h{i % 3}"}) + "\n" for i in range(300))
    with c:
        for enc, data in (("gzip", gzip.compress(body.encode())),
                          ("zstd", _zstd_streamed(body.encode()))):  # fmt: skip
            r = c.post(
                "/api/v1/ingest",
                content=data,
                headers={"Content-Encoding": enc, "Content-Type": "application/x-ndjson"},
            )
            assert r.json()["accepted"] == 300
    producer.close()
    consumer = local_bus.consumer(None, ["logs.raw"], "earliest")
    got: list[Record] = []
    while batch := consumer.poll(1000, 0.2):
        got += [decode_record(m.value) for m in batch]
    consumer.close()
    assert sorted(r.line for r in got) == sorted([f"n{i}" for i in range(300)] * 2)


def test_overload_is_429_with_retry_after_and_nothing_is_read(
    client: tuple[TestClient, NodeContext], fake: FakeProducer
) -> None:
    c, ctx = client
    fake.backlog = api_ingest.BACKLOG_LIMIT + 1
    r = c.post("/api/v1/ingest", content=b"a\n")
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) >= 1
    assert "wait for the bus" in r.json()["error"]
    fake.backlog = 0
    fake.spool = {"bytes": 101, "max_bytes": 100}  # the spool is over its limit
    r = c.post("/api/v1/ingest", content=b"a\n")
    assert r.status_code == 429
    assert "spool is full" in r.json()["error"]
    assert int(r.headers["retry-after"]) == api_ingest.RETRY_AFTER_SPOOL_FULL_S
    fake.spool = None
    assert c.post("/api/v1/ingest", content=b"a\n").status_code == 200
    assert fake.lines() == ["a"]
    assert ctx.registry.snapshot()["counters"]["source:http"]["throttled"] == 2


def test_200_only_after_the_flush_and_in_flight_requests_are_bounded(
    client: tuple[TestClient, NodeContext], fake: FakeProducer, monkeypatch: pytest.MonkeyPatch
) -> None:
    c, _ = client
    monkeypatch.setattr(api_ingest, "MAX_IN_FLIGHT", 1)
    fake.release.clear()  # the bus is slow: flush blocks until released
    answers: list[int] = []
    first = threading.Thread(
        target=lambda: answers.append(c.post("/api/v1/ingest", content=b"x\ny\n").status_code)
    )
    first.start()
    wait_for(fake.flushing.is_set, 10, "the flush to start")
    # produced, not durable: no answer yet
    assert answers == []
    assert fake.durable == 0
    second = c.post("/api/v1/ingest", content=b"z\n")  # one request in flight is the limit
    assert second.status_code == 429
    assert "in progress" in second.json()["error"]
    fake.release.set()
    first.join(10)
    assert answers == [200]
    assert fake.durable == 2
    assert c.post("/api/v1/ingest", content=b"z\n").status_code == 200


def test_each_token_selects_its_source(
    tmp_path: Path, local_bus: LocalBus, fake: FakeProducer
) -> None:
    config = parse_config(
        "sources:\n"
        "  - {type: http, name: web, tag: webapp, token: t-web}\n"
        "  - {type: http, name: batch, token: t-batch, max_body_bytes: 10}\n"
        "  - {type: http, name: open}\n",
        "t.yaml",
    )
    c, ctx = make_client(tmp_path, local_bus, config, fake)
    with c:
        auth = {"Authorization": "Bearer t-web"}
        assert c.post("/api/v1/ingest", content=b"w\n", headers=auth).status_code == 200
        auth = {"Authorization": "Bearer t-batch"}
        assert c.post("/api/v1/ingest", content=b"b" * 11, headers=auth).status_code == 413
        assert c.post("/api/v1/ingest", content=b"o\n").status_code == 200  # no token: "open"
        auth = {"Authorization": "Bearer nope"}
        assert c.post("/api/v1/ingest", content=b"n\n", headers=auth).status_code == 401
    assert [(decode_record(v).source, decode_record(v).line) for v in fake.produced] == [
        ("webapp", "w"),
        ("open", "o"),
    ]
    counters = ctx.registry.snapshot()["counters"]
    assert counters["source:web"]["received"] == 1
    assert counters["source:open"]["received"] == 1
    assert counters["source:batch"]["refused"] == 1
