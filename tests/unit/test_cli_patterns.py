"""``logfactory patterns``: parse's file contract, and learn/list/show/mark/export/import on a
real local bus."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from logfactory.cli import cli

ROOT = Path(__file__).resolve().parents[2]

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


def _config(tmp_path: Path) -> str:
    text = (ROOT / "examples" / "demo.yaml").read_text().replace("var/demo", str(tmp_path / "d"))
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return str(path)


def test_learn_list_mark_export_import_round_trip(tmp_path: Path) -> None:
    config = _config(tmp_path)
    history = tmp_path / "history.log"
    history.write_text("\n".join(LINES * 3) + "\n")
    runner = CliRunner()
    learned = runner.invoke(cli, ["patterns", "learn", str(history), "-c", config])
    assert learned.exit_code == 0, learned.output
    assert "18 messages" in learned.output
    listed = runner.invoke(cli, ["patterns", "list", "-c", config])
    ids = [line.split()[0] for line in listed.output.splitlines()]
    assert len(ids) == 2, listed.output
    marked = runner.invoke(
        cli,
        ["patterns", "mark", ids[0], "--alert", "who logs in?", "--severity", "low", "-c", config],
    )
    assert marked.exit_code == 0, marked.output
    shown = json.loads(runner.invoke(cli, ["patterns", "show", ids[0], "-c", config]).output)
    assert (shown["status"], shown["reason"], shown["severity"]) == ("alert", "who logs in?", "low")
    alerts = runner.invoke(cli, ["patterns", "list", "--status", "alert", "-c", config])
    assert len(alerts.output.splitlines()) == 1

    exported = tmp_path / "lib.jsonl"
    assert runner.invoke(cli, ["patterns", "export", str(exported), "-c", config]).exit_code == 0
    other = _config(tmp_path / "other")
    imported = runner.invoke(cli, ["patterns", "import", str(exported), "-c", other])
    assert imported.exit_code == 0, imported.output
    shown2 = json.loads(runner.invoke(cli, ["patterns", "show", ids[0], "-c", other]).output)
    assert shown2["status"] == "alert"


def test_mark_needs_exactly_one_review_and_a_known_id(tmp_path: Path) -> None:
    config = _config(tmp_path)
    runner = CliRunner()
    assert runner.invoke(cli, ["patterns", "mark", "p-x", "-c", config]).exit_code == 2
    unknown = runner.invoke(cli, ["patterns", "mark", "p-x", "--normal", "-c", config])
    assert unknown.exit_code == 1
    assert "no pattern" in unknown.output
