"""``/api/v1/export`` over a real embedded store: NDJSON and CSV parse back to the stored
records; a cap smaller than the matches ends with the truncation line; the body is produced
chunk by chunk (bounded memory); every export is in the audit trail."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers.search_api import SearchWorld, build_world, newest_first, oracle_ids

from logfactory.api.export import CHUNK_BYTES, CSV_COLUMNS, ExportPlan, export_chunks
from logfactory.errors import StoreUnavailable
from logfactory.store.document import StoredDoc, doc_to_json


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> SearchWorld:
    return build_world(tmp_path_factory.mktemp("export"))


def _ndjson(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line]


def test_ndjson_is_every_match_as_the_search_shows_it(world: SearchWorld, tmp_path: Path) -> None:
    with world.client(tmp_path) as (client, _):
        r = client.get("/api/v1/export", params={"q": "kind:log"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/x-ndjson")
    assert "attachment" in r.headers["content-disposition"]
    lines = _ndjson(r.text)
    by_id = {d.id: d for d in world.docs}
    assert [line["id"] for line in lines] == oracle_ids(world, "kind:log")
    assert all(line == doc_to_json(by_id[str(line["id"])]) for line in lines)
    assert int(r.headers["x-export-matches"]) == len(lines)
    assert not any("_truncated" in line for line in lines)


def test_csv_has_a_header_and_parses_back(world: SearchWorld, tmp_path: Path) -> None:
    with world.client(tmp_path) as (client, _):
        r = client.get("/api/v1/export", params={"format": "csv"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    expected = newest_first(world.docs)
    assert [row["id"] for row in rows] == [d.id for d in expected]
    for row, doc in zip(rows, expected, strict=True):
        shown = doc_to_json(doc)
        assert row["host"] == doc.host
        assert row["message"] == doc.message
        assert row["time"] == shown["time"]
        assert row["severity"] == doc.severity
        assert (json.loads(row["fields"]) if row["fields"] else {}) == doc.fields


def test_csv_with_chosen_columns_and_decoded_fields(world: SearchWorld, tmp_path: Path) -> None:
    name = next(k for d in world.docs for k in d.fields)
    with world.client(tmp_path) as (client, _):
        r = client.get(
            "/api/v1/export", params={"format": "csv", "fields": f"host,fields.{name},message"}
        )
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert tuple(rows[0]) == ("id", "host", f"fields.{name}", "message")
    by_id = {d.id: d for d in world.docs}
    for row in rows:
        value = by_id[row["id"]].fields.get(name)
        want = "" if value is None else value if isinstance(value, str) else json.dumps(value)
        assert row[f"fields.{name}"] == want


@pytest.mark.parametrize("fmt", ["ndjson", "csv"])
def test_a_cap_smaller_than_the_matches_ends_with_a_truncation_line(
    world: SearchWorld, tmp_path: Path, fmt: str
) -> None:
    with world.client(tmp_path, export_max=25) as (client, _):
        r = client.get("/api/v1/export", params={"format": fmt})
    assert r.status_code == 200
    assert r.headers["x-export-limit"] == "25"
    assert int(r.headers["x-export-matches"]) == len(world.docs)
    newest = [d.id for d in newest_first(world.docs)][:25]
    if fmt == "ndjson":
        lines = _ndjson(r.text)
        assert [line["id"] for line in lines[:-1]] == newest
        assert lines[-1] == {"_truncated": {"reason": "capped", "records": 25, "limit": 25}}
    else:
        rows = list(csv.reader(io.StringIO(r.text)))
        assert [row[0] for row in rows[1:-1]] == newest
        assert rows[-1][0].startswith("# truncated: capped at 25 records")


def test_an_export_is_audited(world: SearchWorld, tmp_path: Path) -> None:
    with world.client(tmp_path) as (client, ctx):
        r = client.get("/api/v1/export", params={"q": "severity:error", "format": "csv"})
        assert r.status_code == 200
        lines = ctx.access.audit_trail(action="store_exported")
    assert len(lines) == 1
    entry = lines[0].as_json()
    assert entry["target"] == "severity:error"
    assert entry["address"] == "192.0.2.9"
    assert str(entry["actor"]).startswith("token:")
    assert entry["detail"]["format"] == "csv"
    assert entry["detail"]["matches"] == len(oracle_ids(world, "severity:error"))


def test_a_bad_query_is_refused_before_the_stream(world: SearchWorld, tmp_path: Path) -> None:
    with world.client(tmp_path) as (client, ctx):
        r = client.get("/api/v1/export", params={"q": "(oops"})
        audited = ctx.access.audit_trail(action="store_exported")
    assert r.status_code == 400
    assert r.json()["column"] is not None
    assert audited == []


def test_the_body_is_made_chunk_by_chunk(world: SearchWorld) -> None:
    """The first chunk is sent after about CHUNK_BYTES of records were read, however many
    the export holds: memory is bounded by the chunk, not the result."""
    pulled = 0

    def endless() -> Iterator[StoredDoc]:
        nonlocal pulled
        while True:
            for doc in world.docs:
                pulled += 1
                yield doc

    for fmt in ("ndjson", "csv"):
        pulled = 0
        chunks = export_chunks(ExportPlan(fmt, None, 10**9, None), endless())
        first = next(chunks)
        assert CHUNK_BYTES <= len(first) < 2 * CHUNK_BYTES
        smallest = min(len(json.dumps(doc_to_json(d))) for d in world.docs) // 2
        assert pulled <= CHUNK_BYTES // smallest + 1
        second = next(chunks)
        assert len(second) >= CHUNK_BYTES


def test_an_export_cut_short_says_so_at_its_end(world: SearchWorld) -> None:
    """Fewer records than matched (the export's deadline passed between pages), or the store
    failing once the answer has begun: the last line says so, with what was sent."""
    docs = newest_first(world.docs)[:10]
    body = b"".join(export_chunks(ExportPlan("ndjson", None, 100, 50), iter(docs)))
    lines = _ndjson(body.decode())
    assert [line["id"] for line in lines[:-1]] == [d.id for d in docs]
    assert lines[-1] == {"_truncated": {"reason": "timed_out", "records": 10, "limit": 100}}

    def failing() -> Iterator[StoredDoc]:
        yield from docs[:3]
        raise StoreUnavailable("the store could not answer: gone")

    body = b"".join(export_chunks(ExportPlan("csv", ("host",), 100, None), failing()))
    rows = list(csv.reader(io.StringIO(body.decode())))
    assert rows[0] == ["id", "host"]
    assert [row[0] for row in rows[1:4]] == [d.id for d in docs[:3]]
    assert rows[-1][0].startswith("# truncated: stopped after 3 records")
    complete = b"".join(export_chunks(ExportPlan("ndjson", None, 100, 10), iter(docs)))
    assert b"_truncated" not in complete
