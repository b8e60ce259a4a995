"""``parse_file``: the interface the accuracy benchmark uses."""

from __future__ import annotations

import json
from pathlib import Path

from logfactory.factory.patterns.entry import pattern_id
from logfactory.factory.patterns.parse_file import parse_file, parse_messages

LINES = [
    "Invalid user admin from 10.0.0.1",
    "disk full on <*>",
    "Invalid user oracle from 10.0.0.2",
    "Invalid user guest from 10.0.0.3",
    "Invalid user admin from 10.0.0.4",
]


def test_one_object_per_line_with_the_final_template(tmp_path: Path) -> None:
    src, out = tmp_path / "in.log", tmp_path / "out.jsonl"
    src.write_bytes(("\n".join(LINES) + "\n").encode())
    summary = parse_file(src, out, workshop="w")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["line"] for r in rows] == [1, 2, 3, 4, 5]
    # admin and oracle were separate templates until guest revealed the variable: at the end
    # every "Invalid user" line reports the general template and its id (lineage followed)
    general = "Invalid user <*> from <*>"
    assert [r["template"] for r in rows] == [
        general,
        "disk full on <*>",
        general,
        general,
        general,
    ]
    assert {r["pattern"] for r in rows if r["template"] == general} == {pattern_id("w", general)}
    assert (summary.lines, summary.templates) == (5, 2)


def test_bad_bytes_and_empty_lines_still_give_a_row_each(tmp_path: Path) -> None:
    src, out = tmp_path / "in.log", tmp_path / "out.jsonl"
    src.write_bytes(b"ok 1\n\xff\xfe bad\r\n\nok 2")
    summary = parse_file(src, out)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["line"] for r in rows] == [1, 2, 3, 4]
    assert rows[0]["template"] == rows[3]["template"] == "ok <*>"
    assert "\ufffd" in rows[1]["template"]
    assert rows[2]["template"] == ""
    assert summary.lines == 4


def test_parse_messages_matches_the_file_interface(tmp_path: Path) -> None:
    src, out = tmp_path / "in.log", tmp_path / "out.jsonl"
    src.write_text("\n".join(LINES) + "\n")
    parse_file(src, out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["pattern"], r["template"]) for r in rows] == parse_messages(LINES)
