"""The sort stage on real-looking log files, through a real worker, against goldens a person
reviewed (issue 22): an auth log, a loghost's messages, compute nodes' kernel oopses, a Java and
a Python application log with traces and a slurmctld log (``tests/corpora/``, see its README),
each fed line by line as a file tail sends it and, for the syslog files, as rsyslog forwards it.

Why: the multi-line tests in ``test_sort.py`` use the production continuation pattern as their own
oracle, so they could not see a wrong rule: a sudo line glued onto the sshd record before it
(issue 12) passed them. Here the expectation comes from the files alone: every trace whole,
nothing else merged, each record with its own program and host."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from tests.corpora.corpora import (
    NAMES,
    SYSLOG_NAMES,
    config_for,
    differences,
    golden,
    golden_lines,
    records,
    run_worker,
)
from tests.helpers.worker import read_topic

from logfactory.topics import DEADLETTER, PARSED

CASES = [(name, day, "file") for name in NAMES for day in (1, 2)] + [
    (name, 1, form) for name in SYSLOG_NAMES for form in ("traditional", "rfc3339")
]


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("name", "day", "form"), CASES)
def test_the_worker_emits_the_golden_records(
    name: str, day: int, form: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, _ = config_for(tmp_path / "d")
    sent_records, sent = records(name, day, form)
    run_worker(config, sent_records, monkeypatch)
    assert read_topic(config, DEADLETTER) == []
    parsed = read_topic(config, PARSED)
    expected = golden(name, day)
    assert list(differences(parsed, expected, sent)) == []
    assert len(parsed) == len(expected)
    assert sum(len(p["message"].split("\n")) for p in parsed) == len(sent)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("day", [1, 2])
def test_each_golden_covers_its_file_once(name: str, day: int) -> None:
    """The goldens themselves: every non-empty line in exactly one record, spans ordered, each
    record's lines ascending within its span (a check of the reviewed files, not of the code)."""
    _, sent = records(name, day)
    expected = golden(name, day)
    numbers = [n for rec in expected for n in golden_lines(rec)]
    assert sorted(numbers) == [line.number for line in sent]
    for rec in expected:
        lines = golden_lines(rec)
        assert lines == sorted(lines)
        assert (lines[0], lines[-1]) == (rec["first"], rec["last"])
    assert [rec["first"] for rec in expected] == sorted(rec["first"] for rec in expected)


def test_the_corpora_hold_what_they_are_for() -> None:
    """Traces interleaved with other programs' lines, sudo lines right after sshd's, blank
    lines inside chained Python tracebacks: the cases the goldens must decide."""
    interleaved = {name for name in NAMES for rec in golden(name, 1) if "lines" in rec}
    assert {"messages", "kernel", "python"} <= interleaved
    auth = records("auth", 1)[1]
    after_sshd = [
        b for a, b in itertools.pairwise(auth) if " sshd[" in a.text and " sudo: " in b.text
    ]
    assert len(after_sshd) >= 5
    multi = {name: sum(len(golden_lines(r)) > 1 for r in golden(name, 1)) for name in NAMES}
    assert all(multi[name] >= 5 for name in ("messages", "kernel", "java", "python")), multi
