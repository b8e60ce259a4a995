"""Learn, then match (issue 22): ``logfactory patterns learn`` on day 1 of each reference corpus,
then day 2 through a real worker, as a file tail sends it and, for the syslog files, as rsyslog
forwards it. Day 2 repeats day 1's routine messages with other users, pids, addresses, ports,
job ids and times, plus a few messages never seen before (``"new": true`` in its golden).

Why: a library is learned from history so that the live records it knows are not announced
again. Issue 12's ``patterns learn`` mined whole syslog lines (header included), so nothing it
learned ever matched a live record; its test checked only counts, on header-less input. Here
the promise itself is checked: exactly the listed new messages are announced, nothing else."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tests.corpora.corpora import (
    HERE,
    MANIFEST,
    NAMES,
    SYSLOG_NAMES,
    config_for,
    first_line,
    golden,
    records,
    run_worker,
)
from tests.helpers.worker import bus_of, read_topic

from logfactory.cli import cli
from logfactory.factory.patterns.topic import load_library
from logfactory.topics import PARSED

# a syslog header left in a template: "login01 sshd[<*>]: ...", "cn12 kernel: ..."
_HEADER_IN_TEMPLATE = re.compile(r"(?:login01|loghost01|mgmt01|cn\d+) [\w.-]+(?:\[[^\]]*\])?: ")

CASES = [(name, "file") for name in NAMES] + [(name, "traditional") for name in SYSLOG_NAMES]


def learn(name: str, config_file: Path) -> str:
    workshop = MANIFEST[name]["workshop"]
    day1 = HERE / name / "day1.log"
    result = CliRunner().invoke(
        cli, ["patterns", "learn", str(day1), "--workshop", workshop, "-c", str(config_file)]
    )
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("name", "form"), CASES)
def test_day_two_announces_exactly_its_new_messages(
    name: str, form: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, config_file = config_for(tmp_path / "d", new_patterns=True)
    output = learn(name, config_file)
    assert "did not decode" not in output
    bus = bus_of(config)
    try:
        templates = [entry.template for entry in load_library(bus).entries()]
    finally:
        bus.close()
    assert len(templates) >= 5, templates
    assert [t for t in templates if _HEADER_IN_TEMPLATE.search(t)] == []

    sent_records, sent = records(name, 2, form)
    run_worker(config, sent_records, monkeypatch)
    parsed = read_topic(config, PARSED)
    assert len(parsed) == len(golden(name, 2))
    assert all(p.get("pattern") for p in parsed)  # every record went through the library
    first_seen: dict[str, tuple[int, str]] = {}
    for p in parsed:
        n = first_line(p, sent)
        if p["pattern"] not in first_seen or n < first_seen[p["pattern"]][0]:
            first_seen[p["pattern"]] = (n, p["message"].split("\n")[0])
    announced: list[dict[str, Any]] = read_topic(config, "events.NEW_PATTERN")
    patterns = [event["body"]["pattern"] for event in announced]
    assert len(patterns) == len(set(patterns))  # each once
    got = sorted(first_seen[pattern] for pattern in patterns)
    expected = [rec["first"] for rec in golden(name, 2) if rec.get("new")]
    assert expected  # each day 2 has messages never seen on day 1
    assert got == [first_seen_at(n, first_seen) for n in expected]


def first_seen_at(line: int, first_seen: dict[str, tuple[int, str]]) -> tuple[int, str]:
    """(line, its first message line) for a golden line number, to compare with what was
    announced (the message makes a failure readable)."""
    for seen in first_seen.values():
        if seen[0] == line:
            return seen
    return (line, "<no record's template was first seen at this line>")
