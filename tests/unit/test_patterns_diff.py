"""``patterns diff``: the comparison (added, removed, generalised, reviews, counts on request),
the strict file reader, and the command's output and ``diff``-like exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from logfactory.cli import cli
from logfactory.factory.patterns.diff import (
    LibraryFileError,
    diff_libraries,
    read_library_file,
)
from logfactory.factory.patterns.entry import PatternEntry, encode_entry, pattern_id
from logfactory.factory.patterns.library import PatternLibrary


def entry(template: str, workshop: str = "syslog", **kw: Any) -> PatternEntry:
    return PatternEntry(
        id=pattern_id(workshop, template), workshop=workshop, template=template, **kw
    )


def test_identical_libraries_have_no_differences_even_when_counts_moved() -> None:
    old = [entry("disk <*> full", count=3, last_seen=10)]
    new = [entry("disk <*> full", count=9, last_seen=99)]
    result = diff_libraries(old, new)
    assert not result
    assert result.summary() == "no differences (counts not compared)"
    with_counts = diff_libraries(old, new, counts=True)
    assert with_counts
    assert [(c.old.count, c.new.count) for c in with_counts.counts_changed] == [(3, 9)]
    assert with_counts.summary().endswith("1 counts changed")


def test_groups_added_removed_generalised_and_status() -> None:
    alice = entry("session closed for user=alice", status="alert", reason="x", severity="low")
    general = entry("session closed for user=<*>", lineage=[alice.id], status="alert", reason="x")
    kept_old = entry("disk <*> full")
    kept_new = entry("disk <*> full", status="alert", reason="disk full", severity="high")
    gone = entry("link down")
    fresh = entry("fan <*> failed")
    result = diff_libraries([alice, kept_old, gone], [general, kept_new, fresh])
    assert [e.id for e in result.added] == [fresh.id]  # the general entry is not "added"
    assert [e.id for e in result.removed] == [gone.id]  # ... and alice is not "removed"
    assert [(c.old.id, c.new.id) for c in result.generalised] == [(alice.id, general.id)]
    assert [(c.old.status, c.new.status, c.new.reason) for c in result.status_changed] == [
        ("new", "alert", "disk full")
    ]
    assert result.summary() == (
        "1 added, 1 removed, 1 generalised, 1 status changed (counts not compared)"
    )
    doc = result.to_json()
    assert doc["differences"] is True
    assert doc["summary"] == {"added": 1, "removed": 1, "generalised": 1, "status_changed": 1}
    assert "counts_changed" not in doc
    assert doc["generalised"][0]["new"]["template"] == "session closed for user=<*>"


def test_an_old_id_still_active_in_new_is_not_generalised_and_reason_alone_is_a_change() -> None:
    a = entry("a <*>", status="alert", reason="one")
    b = entry("b <*>", lineage=[a.id])  # corrupt but possible: a is still there
    result = diff_libraries([a], [entry("a <*>", status="alert", reason="two"), b])
    assert result.generalised == []
    assert [e.id for e in result.added] == [b.id]
    assert [(c.old.reason, c.new.reason) for c in result.status_changed] == [("one", "two")]


def _learned(messages: list[str]) -> PatternLibrary:
    library = PatternLibrary()
    for i, message in enumerate(messages):
        library.observe("syslog", message, 1_000_000_000 * (i + 1))
    return library


def test_a_real_generalisation_between_two_exports(tmp_path: Path) -> None:
    library = _learned(["session closed for user=alice", "disk /dev/sda1 full"])
    library.export_jsonl(tmp_path / "old.jsonl")
    for user in ("bob", "carol"):
        library.observe("syslog", f"session closed for user={user}", 5_000_000_000)
    library.export_jsonl(tmp_path / "new.jsonl")
    old, new = read_library_file(tmp_path / "old.jsonl"), read_library_file(tmp_path / "new.jsonl")
    result = diff_libraries(old, new)
    assert [(c.old.template, c.new.template) for c in result.generalised] == [
        ("session closed for user=alice", "session closed for user=<*>")
    ]
    assert (result.added, result.removed, result.status_changed) == ([], [], [])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "f.jsonl:1: not a logfactory-patterns file"),
        ('{"format": "other"}\n', "f.jsonl:1: not a logfactory-patterns file"),
        ('{"format": "logfactory-patterns", "version": 9}\n', "f.jsonl:1: unsupported version 9"),
        (
            '{"format": "logfactory-patterns", "version": 1}\n\n{"id": 5}\n',
            "f.jsonl:3: not a pattern entry",
        ),
        (
            '{"format": "logfactory-patterns", "version": 1}\n'
            '{"id": "p-1", "workshop": "w", "template": "t", "status": "maybe"}\n',
            "f.jsonl:2: pattern p-1: unknown status 'maybe'",
        ),
        (
            '{"format": "logfactory-patterns", "version": 1}\n'
            '{"id": "p-1", "workshop": "w", "template": "t"}\n'
            '{"id": "p-1", "workshop": "w", "template": "t"}\n',
            "f.jsonl:3: pattern p-1 appears twice (first on line 2)",
        ),
        (
            '{"format": "logfactory-patterns", "version": 1, "entries": 2}\n'
            '{"id": "p-1", "workshop": "w", "template": "t"}\n',
            "announces 2 entries but the file has 1; is it truncated?",
        ),
        ('{"format": "logfactory-patterns", "version": 1}\n\xff\xfe\n', "f.jsonl:2: not a"),
    ],
)
def test_bad_files_are_refused_with_file_and_line(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "f.jsonl"
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(LibraryFileError) as info:
        read_library_file(path)
    assert message in str(info.value)


# -- the command ---------------------------------------------------------------------------------


def _files(tmp_path: Path) -> tuple[str, str]:
    old = _learned(["session closed for user=alice", "disk /dev/sda1 full", "link eth0 down"])
    old.export_jsonl(tmp_path / "old.jsonl")
    for user in ("bob", "carol"):
        old.observe("syslog", f"session closed for user={user}", 9_000_000_000)
    disk = next(e for e in old.entries() if e.template.startswith("disk"))
    old.set_status(disk.id, "alert", "a disk is full", "critical")
    old.observe("syslog", "fan 3 failed", 9_000_000_000)
    new = PatternLibrary()  # drop "link eth0 down" by rebuilding without it
    for e in old.entries():
        if not e.template.startswith("link"):
            new.apply(encode_entry(e))
    new.export_jsonl(tmp_path / "new.jsonl")
    return str(tmp_path / "old.jsonl"), str(tmp_path / "new.jsonl")


def test_cli_reports_groups_and_exits_1_when_different(tmp_path: Path) -> None:
    old, new = _files(tmp_path)
    result = CliRunner().invoke(cli, ["patterns", "diff", old, new])
    assert result.exit_code == 1, result.output
    out = result.output
    assert "added (1):\n  + p-" in out
    assert "fan <*> failed" in out
    assert "removed (1):\n  - p-" in out
    assert "link eth0 down" in out
    assert "session closed for user=alice -> session closed for user=<*>" in out
    assert "new -> alert(critical): a disk is full" in out
    assert "counts changed" not in out
    assert out.splitlines()[-1] == (
        "1 added, 1 removed, 1 generalised, 1 status changed (counts not compared)"
    )


def test_cli_json_and_counts(tmp_path: Path) -> None:
    old, new = _files(tmp_path)
    result = CliRunner().invoke(cli, ["patterns", "diff", "--json", "--counts", old, new])
    assert result.exit_code == 1, result.output
    doc = json.loads(result.output)
    assert doc["summary"] == {
        "added": 1,
        "removed": 1,
        "generalised": 1,
        "status_changed": 1,
        "counts_changed": 0,  # the disk entry's count did not move; the rest are not in both
    }
    assert doc["added"][0]["template"] == "fan <*> failed"
    assert doc["status_changed"][0]["new"]["reason"] == "a disk is full"


def test_cli_counts_only_differences_are_reported_with_counts(tmp_path: Path) -> None:
    library = _learned(["disk /dev/sda1 full"])
    library.export_jsonl(tmp_path / "a.jsonl")
    library.observe("syslog", "disk /dev/sda2 full", 7_000_000_000)
    library.export_jsonl(tmp_path / "b.jsonl")
    a, b = str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")
    runner = CliRunner()
    same = runner.invoke(cli, ["patterns", "diff", a, b])
    assert same.exit_code == 0, same.output
    assert same.output == "no differences (counts not compared)\n"
    counted = runner.invoke(cli, ["patterns", "diff", "--counts", a, b])
    assert counted.exit_code == 1, counted.output
    assert "count 1 -> 2, last seen 1970-01-01T00:00:01Z -> 1970-01-01T00:00:07Z" in counted.output


def test_cli_exits_2_on_bad_input_naming_file_and_line(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    _learned(["disk /dev/sda1 full"]).export_jsonl(good)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(good.read_text().splitlines()[0] + "\nnot json\n")
    runner = CliRunner()
    result = runner.invoke(cli, ["patterns", "diff", str(good), str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:2: not a pattern entry" in result.output
    missing = runner.invoke(cli, ["patterns", "diff", str(good), str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 2
    assert "does not exist" in missing.output
