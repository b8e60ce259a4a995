"""HTTP ingest: NDJSON and plain text onto logs.raw, with rejects, limits and who may post."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from tests.helpers.clients import TestClient, bearer, make_client, raw_records

from logfactory.access import Role
from logfactory.api import NodeContext
from logfactory.api.routes.ingest import ingest_lines, is_ndjson, unrouted_warning
from logfactory.bus.base import BusError
from logfactory.bus.local import LocalBus
from logfactory.config import parse_config
from logfactory.record import decode_record


def test_ndjson_accepts_good_lines_and_reports_bad_ones_by_number(
    client: tuple[TestClient, NodeContext], local_bus: LocalBus
) -> None:
    c, ctx = client
    body = "\n".join(
        [
            json.dumps({"line": "first", "host": "h1", "source": "sce"}),
            "{not json",
            "",
            json.dumps({"message": "second", "meta": {"file": "/x"}, "level": "warn"}),
            json.dumps({"line": "x", "host": 5}),
            json.dumps(["an", "array"]),
            json.dumps({"host": "h2"}),
        ]
    )
    r = c.post(
        "/api/v1/ingest?source=app&host=qh",
        content=body,
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert r.status_code == 200
    reply = r.json()
    assert (reply["accepted"], reply["rejected"]) == (2, 4)
    assert [e["line"] for e in reply["errors"]] == [2, 5, 6, 7]
    assert "host" in reply["errors"][1]["error"]
    assert "'line' or 'message'" in reply["errors"][3]["error"]
    records = raw_records(local_bus)
    assert [(k, r.source, r.host, r.line) for k, r in records] == [
        (b"h1", "sce", "h1", "first"),
        (b"qh", "app", "qh", "second"),
    ]
    assert records[1][1].meta == {"file": "/x", "level": "warn", "peer": "192.0.2.9"}
    counters = ctx.registry.snapshot()["counters"]["source:http"]
    assert counters["received"] == 2
    assert counters["rejected"] == 4
    assert counters["bytes"] == len(body.encode())


def test_plain_text_lines_with_defaults_from_query_and_client(
    client: tuple[TestClient, NodeContext], local_bus: LocalBus
) -> None:
    c, _ = client
    body = b"one\r\n\r\n  \ntwo \xff bytes\nthree"
    r = c.post("/api/v1/ingest", content=body, headers={"Content-Type": "text/plain"})
    # an empty configuration has no workshop for the default tag: said, and still accepted
    assert r.json() == {
        "accepted": 3,
        "rejected": 0,
        "errors": [],
        "warnings": [unrouted_warning("http")],
    }
    records = [rec for _, rec in raw_records(local_bus)]
    assert [rec.line for rec in records] == ["one", "two \ufffd bytes", "three"]
    assert {(rec.source, rec.host) for rec in records} == {("http", "192.0.2.9")}
    assert records[1].raw == b"two \xff bytes"  # original bytes kept for the dead-letter path


def test_gzip_body_is_inflated(client: tuple[TestClient, NodeContext], local_bus: LocalBus) -> None:
    c, _ = client
    r = c.post(
        "/api/v1/ingest?host=z",
        content=gzip.compress(b"a\nb\n"),
        headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"},
    )
    assert r.json()["accepted"] == 2
    assert [rec.host for _, rec in raw_records(local_bus)] == ["z", "z"]
    bad = c.post("/api/v1/ingest", content=b"x", headers={"Content-Encoding": "br"})
    assert bad.status_code == 415


def test_body_over_the_limit_is_413_and_nothing_lands(tmp_path: Path, local_bus: LocalBus) -> None:
    config = parse_config("sources:\n  - {type: http, max_body_bytes: 100}\n", "t.yaml")
    c, ctx = make_client(tmp_path, local_bus, config)
    with c:
        assert c.post("/api/v1/ingest", content=b"x\n" * 60).status_code == 413
        bomb = gzip.compress(b"y\n" * 10_000)
        assert len(bomb) < 100
        r = c.post("/api/v1/ingest", content=bomb, headers={"Content-Encoding": "gzip"})
        assert r.status_code == 413
        assert "100 bytes" in r.json()["error"]
        assert c.post("/api/v1/ingest", content=b"x\n" * 50).status_code == 200
    ctx.producer.close()
    assert len(raw_records(local_bus)) == 50
    assert ctx.registry.snapshot()["counters"]["source:http"]["refused"] == 2


def test_a_source_token_picks_its_source_and_may_only_post(
    tmp_path: Path, local_bus: LocalBus
) -> None:
    """An http source's own token posts to that source (its tag, its stats) and has the role
    ingest: it reads nothing. No credential, or a wrong one, is a 401 that says how to send
    one."""
    config = parse_config(
        "sources:\n  - {type: http, name: web, tag: webapp, token: s3cret}\n", "t.yaml"
    )
    c, ctx = make_client(tmp_path, local_bus, config, role=None)
    source = {"Authorization": "Bearer s3cret"}
    with c:
        assert c.post("/api/v1/ingest", content=b"a").status_code == 401
        wrong = c.post("/api/v1/ingest", content=b"a", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert wrong.headers["www-authenticate"] == "Bearer"
        ok = c.post("/api/v1/ingest", content=b"a", headers=source)
        assert ok.json()["accepted"] == 1
        for path in ("/api/v1/stats", "/api/v1/topics/logs.raw/tail", "/api/v1/patterns"):
            assert c.get(path, headers=source).status_code == 403, path
    ctx.producer.close()
    # the http source's tag is the default source and its name the stats group
    assert [rec.source for _, rec in raw_records(local_bus)] == ["webapp"]
    assert ctx.registry.snapshot()["counters"]["source:web"]["received"] == 1


def test_an_ingest_token_may_post_but_not_read(tmp_path: Path, local_bus: LocalBus) -> None:
    """An API token of the role ingest (what the docs give an edge collector) posts to the first
    source without a token of its own; every read is a 403, the posted line included."""
    config = parse_config(
        "sources:\n  - {type: http, name: web, tag: webapp, token: s3cret}\n"
        "  - {type: http, name: edge, tag: syslog}\n",
        "t.yaml",
    )
    c, ctx = make_client(tmp_path, local_bus, config, role=Role.INGEST)
    with c:
        ok = c.post("/api/v1/ingest", content=b"from an edge\n")
        assert ok.status_code == 200
        assert ok.json()["accepted"] == 1
        for path in ("/api/v1/stats", "/metrics", "/api/v1/topics/logs.raw/tail"):
            denied = c.get(path)
            assert denied.status_code == 403, path
            assert "from an edge" not in denied.text
        assert c.get("/api/v1/stats", headers=bearer(ctx, Role.VIEWER)).status_code == 200
    ctx.producer.close()
    assert [(rec.source, rec.line) for _, rec in raw_records(local_bus)] == [
        ("syslog", "from an edge")
    ]
    assert ctx.registry.snapshot()["counters"]["source:edge"]["received"] == 1


def test_a_failing_bus_is_503_so_the_client_retries(
    client: tuple[TestClient, NodeContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    c, ctx = client

    def broken_flush(timeout: float | None = None) -> None:
        raise BusError("disk full")

    monkeypatch.setattr(ctx.producer, "flush", broken_flush)
    r = c.post("/api/v1/ingest", content=b"a\n")
    assert r.status_code == 503
    assert "disk full" in r.json()["error"]


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/x-ndjson", True),
        ("application/json; charset=utf-8", True),
        ("application/vnd.site+json", True),
        ("text/plain", False),
        (None, False),
    ],
)
def test_content_type_detection(content_type: str | None, expected: bool) -> None:
    assert is_ndjson(content_type) is expected


def test_ingest_lines_never_raises_on_arbitrary_bytes() -> None:
    produced: list[bytes] = []
    body = bytes(range(256)) * 3 + b'\n{"line": "\\ud800"}\n\x00\n'
    for ndjson in (True, False):
        result = ingest_lines(
            body,
            ndjson=ndjson,
            source="s",
            host="h",
            peer=None,
            produce=lambda _t, v, _k: produced.append(v),
        )
        assert result.accepted + result.rejected >= 1
    assert all(decode_record(v).source == "s" for v in produced)


def test_records_whose_tag_has_no_route_are_accepted_with_a_warning(
    tmp_path: Path, local_bus: LocalBus
) -> None:
    """The demo routes `http` and has workshops syslog, sce, ...: `?source=app` would only feed
    the dead-letter topic, and the answer says so (the README's example once did just that)."""
    demo = Path(__file__).parents[3] / "examples" / "demo.yaml"
    c, ctx = make_client(tmp_path, local_bus, parse_config(demo.read_text(), str(demo)))
    with c:
        body = b'{"line":"hello","host":"web01"}\n{"line":"x","source":"sce"}\n'
        headers = {"Content-Type": "application/x-ndjson"}
        r = c.post("/api/v1/ingest?source=app", content=body, headers=headers)
        assert r.status_code == 200
        assert r.json()["accepted"] == 2
        assert r.json()["warnings"] == [unrouted_warning("app")]
        assert "factory.routes" in r.json()["warnings"][0]
        for ok in ("/api/v1/ingest?source=syslog", "/api/v1/ingest?source=http"):  # both known
            r = c.post(ok, content=b"plain line\n", headers={"Content-Type": "text/plain"})
            assert r.status_code == 200, r.json()
            assert "warnings" not in r.json(), r.json()
    ctx.producer.close()
    assert sorted(rec.source for _, rec in raw_records(local_bus)) == [
        "app", "http", "sce", "syslog",
    ]  # fmt: skip
