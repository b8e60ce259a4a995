"""``logfactory patterns``: parse's file contract, and learn/list/show/mark/export/import on a
real local bus."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner
from tests.helpers.worker import demo_config_file

from logfactory.cli import cli

LINES = [
    "Accepted publickey for alice from 10.0.0.1 port 22 ssh2",
    "Accepted publickey for bob from 10.0.0.2 port 23 ssh2",
    "Accepted publickey for carol from 10.0.0.3 port 24 ssh2",
    "Accepted publickey for dave from 10.0.0.4 port 25 ssh2",
    "session closed for user=alice",
    "session closed for user=bob",
]


def test_parse_writes_one_object_per_line_with_final_templates(tmp_path: Path) -> None:
    src, out = tmp_path / "in.txt", tmp_path / "out.jsonl"
    src.write_text("\n".join(LINES) + "\n")
    result = CliRunner().invoke(cli, ["patterns", "parse", "--input", str(src), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["line"] for r in rows] == list(range(1, len(LINES) + 1))
    assert len({r["pattern"] for r in rows[:4]}) == 1  # one template, as it stands at the end
    assert "<*>" in rows[0]["template"]
    assert rows[0]["pattern"] != rows[4]["pattern"]


def test_learn_list_mark_export_import_round_trip(tmp_path: Path) -> None:
    config = demo_config_file(tmp_path)
    history = tmp_path / "history.log"
    history.write_text("\n".join(LINES * 3) + "\n")
    runner = CliRunner()
    learned = runner.invoke(cli, ["patterns", "learn", str(history), "-c", config])
    assert learned.exit_code == 0, learned.output
    assert "18 messages" in learned.output
    listed = runner.invoke(cli, ["patterns", "list", "-c", config])
    ids = [line.split()[0] for line in listed.output.splitlines()[1:]]
    assert len(ids) == 2, listed.output
    marked = runner.invoke(
        cli,
        ["patterns", "mark", ids[0], "--alert", "who logs in?", "--severity", "low", "-c", config],
    )
    assert marked.exit_code == 0, marked.output
    shown = json.loads(runner.invoke(cli, ["patterns", "show", ids[0], "-c", config]).output)
    assert (shown["status"], shown["reason"], shown["severity"]) == ("alert", "who logs in?", "low")
    alerts = runner.invoke(cli, ["patterns", "list", "--status", "alert", "-c", config])
    assert len(alerts.output.splitlines()) == 2  # the header and the one

    exported = tmp_path / "lib.jsonl"
    assert runner.invoke(cli, ["patterns", "export", str(exported), "-c", config]).exit_code == 0
    other = demo_config_file(tmp_path / "other")
    imported = runner.invoke(cli, ["patterns", "import", str(exported), "-c", other])
    assert imported.exit_code == 0, imported.output
    shown2 = json.loads(runner.invoke(cli, ["patterns", "show", ids[0], "-c", other]).output)
    assert shown2["status"] == "alert"


def test_mark_needs_exactly_one_review_and_a_known_id(tmp_path: Path) -> None:
    config = demo_config_file(tmp_path)
    runner = CliRunner()
    assert runner.invoke(cli, ["patterns", "mark", "p-x", "-c", config]).exit_code == 2
    unknown = runner.invoke(cli, ["patterns", "mark", "p-x", "--normal", "-c", config])
    assert unknown.exit_code == 1
    assert "no pattern" in unknown.output


def _many_templates(tmp_path: Path) -> tuple[str, list[str]]:
    """A library of 40 templates (distinct first words never share one) and their ids."""
    config = demo_config_file(tmp_path)
    history = tmp_path / "history.log"
    history.write_text("".join(f"daemon{chr(97 + i % 26)}{i} started ok\n" for i in range(40)))
    runner = CliRunner()
    assert runner.invoke(cli, ["patterns", "learn", str(history), "-c", config]).exit_code == 0
    listed = runner.invoke(cli, ["patterns", "list", "-c", config]).output.splitlines()
    return config, [line.split()[0] for line in listed[1:]]


def test_list_has_a_header_and_readable_times_and_show_too(tmp_path: Path) -> None:
    config, ids = _many_templates(tmp_path)
    runner = CliRunner()
    header, first, *_ = runner.invoke(cli, ["patterns", "list", "-c", config]).output.splitlines()
    assert header.split() == ["ID", "WORKSHOP", "COUNT", "LAST", "SEEN", "STATUS", "TEMPLATE"]
    # the columns line up under the header, the time is ISO 8601 UTC
    assert first.index("syslog") == header.index("WORKSHOP")
    stamp = first[header.index("LAST SEEN") :].split()[0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp), first
    assert first[header.index("STATUS") :].startswith("new ")
    shown = json.loads(runner.invoke(cli, ["patterns", "show", ids[0], "-c", config]).output)
    for key in ("first_seen", "last_seen"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", shown[key]), shown
    empty = runner.invoke(cli, ["patterns", "list", "--status", "alert", "-c", config])
    assert empty.exit_code == 0
    assert empty.output.splitlines()[0] == header


def test_ids_are_given_by_any_unique_prefix(tmp_path: Path) -> None:
    config, ids = _many_templates(tmp_path)
    assert len(ids) == 40
    runner = CliRunner()

    def unique(pid: str) -> str:
        return next(pid[:n] for n in range(3, 23) if sum(i.startswith(pid[:n]) for i in ids) == 1)

    target = ids[7]
    short = unique(target)
    for given in (short, short + "…", short[2:]):  # as listed, as the README abbreviates, bare hex
        shown = runner.invoke(cli, ["patterns", "show", given, "-c", config])
        assert shown.exit_code == 0, shown.output
        assert json.loads(shown.output)["id"] == target
    marked = runner.invoke(cli, ["patterns", "mark", short, "--normal", "-c", config])
    assert marked.exit_code == 0, marked.output
    assert marked.output.strip() == f"{target}: normal"
    assert (
        json.loads(runner.invoke(cli, ["patterns", "show", target, "-c", config]).output)["status"]
        == "normal"
    )

    # 40 ids over 16 hex digits: some first digit is shared, and that prefix is ambiguous
    shared = next(p for p in (i[:3] for i in ids) if sum(i.startswith(p) for i in ids) > 1)
    candidates = sorted(i for i in ids if i.startswith(shared))
    ambiguous = runner.invoke(cli, ["patterns", "show", shared, "-c", config])
    assert ambiguous.exit_code == 1
    assert f"'{shared}' is ambiguous: {len(candidates)} patterns start with it" in ambiguous.output
    assert [line.split()[0] for line in ambiguous.output.splitlines()[1:]] == candidates
    assert "Traceback" not in ambiguous.output

    unknown = runner.invoke(cli, ["patterns", "mark", "p-zz", "--normal", "-c", config])
    assert unknown.exit_code == 1
    assert "no pattern 'p-zz' in the library; `logfactory patterns list` shows the ids" in (
        unknown.output
    )
    nothing = runner.invoke(cli, ["patterns", "show", "p-", "-c", config])
    assert nothing.exit_code == 1
    assert "is no pattern id" in nothing.output
