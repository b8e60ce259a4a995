"""Hostile JSON and long lines on HTTP ingest: a bad line is rejected by its number, never a 500.

Invalid UTF-8 inside a JSON string, nesting 100,000 deep and lone surrogate escapes once escaped
as exceptions (HTTP 500) after the good lines before them were already on the bus, so a client
retrying as the README says doubled them. Now every answer says exactly what was taken: 200 with
the rejected lines by number (the rest on ``logs.raw`` once), or a 400 with nothing produced.
A line longer than the source's ``max_frame_bytes`` (1 MiB by default, as for TCP) is rejected
by its number the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
import zstandard
from tests.helpers.clients import TestClient, make_client, raw_records

from logfactory.access import Role
from logfactory.api import NodeContext
from logfactory.bus.http_ship import RECORDS_MEDIA
from logfactory.bus.local import LocalBus
from logfactory.config import Config, parse_config
from logfactory.record import encode_record, make_record

DEPTH = 100_000
BAD = {
    "invalid_utf8": b'{"line": "bad \xff\xfe byte"}',
    "deep_object": b'{"line": "deep", "meta": {"x": ' + b"[" * DEPTH + b"]" * DEPTH + b"}}",
    "deep_array": b"[" * DEPTH,
    "lone_surrogate": b'{"line": "lone \\ud800 surrogate"}',
}
GOOD = [b'{"line": "good one"}', b'{"line": "good two"}', b'{"line": "good three"}']


def _node(tmp_path: Path, bus: LocalBus, config: Config) -> tuple[TestClient, NodeContext]:
    """The API as a deployed node serves it (an exception is a 500, not raised into the test),
    to an edge collector's credential: a token of the role ingest."""
    return make_client(tmp_path, bus, config, role=Role.INGEST, raise_server_exceptions=False)


def _post_like_a_client(c: TestClient, body: bytes, content_type: str) -> list[int]:
    """Post ``body`` and retry, as the README tells clients, while the answer is not 200
    (three retries at most); the statuses seen."""
    statuses = []
    for _ in range(4):
        r = c.post("/api/v1/ingest", content=body, headers={"Content-Type": content_type})
        statuses.append(r.status_code)
        if r.status_code == 200:
            break
    return statuses


def _lines(bus: LocalBus) -> list[str]:
    return [rec.line for _k, rec in raw_records(bus)]


@pytest.mark.parametrize("bad", list(BAD))
def test_a_bad_ndjson_line_is_rejected_by_number_and_the_rest_taken_once(
    tmp_path: Path, local_bus: LocalBus, bad: str
) -> None:
    c, ctx = _node(tmp_path, local_bus, Config())
    body = b"\n".join([GOOD[0], BAD[bad], GOOD[1], GOOD[2]])
    with c:
        r = c.post("/api/v1/ingest", content=body, headers={"Content-Type": "application/x-ndjson"})
        assert r.status_code == 200, r.text
        assert (r.json()["accepted"], r.json()["rejected"]) == (3, 1)
        assert [e["line"] for e in r.json()["errors"]] == [2]
        assert _post_like_a_client(c, body, "application/x-ndjson") == [200]
    ctx.producer.close()
    assert _lines(local_bus) == ["good one", "good two", "good three"] * 2  # two 200s, no more


def test_the_reasons_name_what_is_wrong(tmp_path: Path, local_bus: LocalBus) -> None:
    c, ctx = _node(tmp_path, local_bus, Config())
    body = b"\n".join([BAD["invalid_utf8"], BAD["deep_object"]])
    with c:
        r = c.post("/api/v1/ingest", content=body, headers={"Content-Type": "application/x-ndjson"})
    ctx.producer.close()
    utf8, deep = r.json()["errors"]
    assert utf8 == {"line": 1, "error": "not a JSON object: a string is not valid UTF-8 (byte 15)"}
    assert deep["line"] == 2
    assert "nested too deeply" in deep["error"]


@pytest.mark.parametrize("bad", list(BAD))
def test_a_json_array_with_a_bad_item_is_400_and_nothing_lands_however_often_retried(
    tmp_path: Path, local_bus: LocalBus, bad: str
) -> None:
    c, ctx = _node(tmp_path, local_bus, Config())
    body = b"[\n" + b",\n".join([GOOD[0], GOOD[1], BAD[bad], GOOD[2]]) + b"\n]"
    with c:
        r = c.post("/api/v1/ingest", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400
        assert r.json()["error"].startswith("not a JSON array")
        if bad == "invalid_utf8":
            assert "not valid UTF-8 (line 4)" in r.json()["error"]
        assert _post_like_a_client(c, body, "application/json") == [400] * 4
    ctx.producer.close()
    assert _lines(local_bus) == []
    assert ctx.registry.snapshot()["counters"]["source:http"]["refused"] == 5


@pytest.mark.parametrize("bad", list(BAD))
def test_a_single_bad_object_is_400_or_rejected_as_line_1(
    tmp_path: Path, local_bus: LocalBus, bad: str
) -> None:
    c, ctx = _node(tmp_path, local_bus, Config())
    with c:
        r = c.post("/api/v1/ingest", content=BAD[bad], headers={"Content-Type": "application/json"})
        if bad == "deep_array":  # a body that starts with '[' is an array
            assert r.status_code == 400
            assert "nested too deeply" in r.json()["error"]
        else:
            assert r.status_code == 200, r.text
            assert r.json()["accepted"] == 0
            assert [e["line"] for e in r.json()["errors"]] == [1]
    ctx.producer.close()
    assert _lines(local_bus) == []


def test_shipped_records_that_do_not_decode_are_rejected_by_number(
    tmp_path: Path, local_bus: LocalBus
) -> None:
    """An edge collector's batch (records as JSON inside msgpack) with a record holding invalid
    UTF-8 or deep nesting: that record is rejected, the others are on the bus once."""
    c, ctx = _node(tmp_path, local_bus, Config())
    good = encode_record(make_record("syslog", "edge", "shipped fine", {}))
    bad_utf8 = good.replace(b"shipped fine", b"shipped \xff")
    deep = good[:-1] + b',"meta":{"x":' + b"[" * DEPTH + b"]" * DEPTH + b"}}"
    pairs = [(b"edge", good), (b"edge", bad_utf8), (b"edge", deep), (b"edge", good)]
    body = zstandard.ZstdCompressor().compress(msgspec.msgpack.encode(pairs))
    headers = {"Content-Type": RECORDS_MEDIA, "Content-Encoding": "zstd"}
    with c:
        r = c.post("/api/v1/ingest", content=body, headers=headers)
    ctx.producer.close()
    assert r.status_code == 200, r.text
    assert [e["record"] for e in r.json()["errors"]] == [2, 3]
    assert _lines(local_bus) == ["shipped fine", "shipped fine"]


# -- one line limit: max_frame_bytes (1 MiB by default) for http sources as for TCP ------------
LONG = (1 << 20) + 1


def test_a_line_over_1mib_is_rejected_by_number_in_every_body_format(
    tmp_path: Path, local_bus: LocalBus
) -> None:
    c, ctx = _node(tmp_path, local_bus, Config())
    text = b"before\n" + b"x" * LONG + b"\nafter\n"
    ndjson = b"\n".join([GOOD[0], json.dumps({"line": "y" * LONG}).encode(), GOOD[1]])
    array = json.dumps(["first", "z" * LONG, {"message": "w" * LONG}, {"line": "last"}])
    with c:
        answers = [
            c.post("/api/v1/ingest", content=text, headers={"Content-Type": "text/plain"}),
            c.post(
                "/api/v1/ingest", content=ndjson, headers={"Content-Type": "application/x-ndjson"}
            ),
            c.post("/api/v1/ingest", content=array, headers={"Content-Type": "application/json"}),
        ]
    ctx.producer.close()
    assert [r.status_code for r in answers] == [200, 200, 200]
    assert [[e.get("line", e.get("item")) for e in r.json()["errors"]] for r in answers] == [
        [2], [2], [2, 3]
    ]  # fmt: skip
    assert all(
        "exceeds max_frame_bytes=1048576" in e["error"] for r in answers for e in r.json()["errors"]
    )
    assert _lines(local_bus) == ["before", "after", "good one", "good two", "first", "last"]
    counters = ctx.registry.snapshot()["counters"]["source:http"]
    assert (counters["received"], counters["rejected"]) == (6, 4)


def test_an_http_source_takes_its_own_max_frame_bytes(tmp_path: Path, local_bus: LocalBus) -> None:
    config = parse_config("sources:\n  - {type: http, max_frame_bytes: 100}\n", "t.yaml")
    c, ctx = _node(tmp_path, local_bus, config)
    body = b"a" * 100 + b"\n" + b"b" * 101 + b"\n"
    with c:
        r = c.post("/api/v1/ingest", content=body, headers={"Content-Type": "text/plain"})
    ctx.producer.close()
    assert r.json()["errors"] == [
        {"line": 2, "error": "line of 101 bytes exceeds max_frame_bytes=100"}
    ]
    assert _lines(local_bus) == ["a" * 100]


@pytest.mark.parametrize("bad_lines", [10, 11])
def test_a_200_names_every_line_it_did_not_take(
    tmp_path: Path, local_bus: LocalBus, bad_lines: int
) -> None:
    """An answer lists 10 errors at most; with more bad lines than that, a 200 could not say
    which lines were taken, so the body is a 400 and nothing of it lands."""
    c, ctx = _node(tmp_path, local_bus, Config())
    body = b"\n".join([GOOD[0], *[b"{not json"] * bad_lines, GOOD[1]])
    with c:
        r = c.post("/api/v1/ingest", content=body, headers={"Content-Type": "application/x-ndjson"})
    ctx.producer.close()
    if bad_lines <= 10:
        assert r.status_code == 200, r.text
        assert [e["line"] for e in r.json()["errors"]] == list(range(2, 2 + bad_lines))
        assert _lines(local_bus) == ["good one", "good two"]
    else:
        assert r.status_code == 400, r.text
        assert "11 lines are bad" in r.json()["error"]
        assert "none was taken" in r.json()["error"]
        assert _lines(local_bus) == []
