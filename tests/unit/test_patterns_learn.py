"""``logfactory patterns learn`` decodes history through the workshops exactly as the factory
does, so what it learns is what live records match (issue 12: it mined whole syslog lines,
``<*> web01 sshd[<*>]: Failed password ...``, and nothing learned ever matched)."""

from __future__ import annotations

import gzip
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner
from tests.helpers.worker import bus_of, demo_config_file, read_topic, run_worker

from logfactory.cli import cli
from logfactory.config import load_config
from logfactory.factory.patterns.learn import Learner, LearnError
from logfactory.factory.patterns.library import PatternLibrary
from logfactory.factory.patterns.topic import load_library
from logfactory.record import make_record
from logfactory.topics import PARSED

HISTORY = [
    b"Dec  6 01:40:20 web01 sshd[1201]: Failed password for root from 10.0.0.1 port 40022 ssh2",
    b"Dec  6 01:40:21 web01 sshd[1202]: Failed password for alice from 10.0.0.2 port 40023 ssh2",
    b"Dec  6 01:40:22 web01 sshd[1203]: Failed password for bob from 10.0.0.3 port 40024 ssh2",
    b"Dec  6 01:40:23 web01 sshd[1204]: Accepted publickey for carol from 10.0.0.4 port 5 ssh2",
    b"Dec  6 01:40:24 web01 sshd[1205]: Accepted publickey for dave from 10.0.0.5 port 6 ssh2",
    b"Dec  6 01:40:25 web01 sshd[1206]: Accepted publickey for erin from 10.0.0.6 port 7 ssh2",
    b"Dec  6 01:41:00 web01 CRON[2001]: pam_unix(cron:session): session opened for user root"
    b" by (uid=0)",
    b"",  # skipped, as the file source skips empty lines
    b"Dec  6 01:42:00 mgmt01 slurmctld[900]: _job_complete: JobId=4242 done",  # -> slurm
    b"Dec  6 01:43:00 web01 python3[77]: Traceback (most recent call last):",
    b'Dec  6 01:43:00 web01 python3[77]:   File "/srv/app.py", line 3, in <module>',
    b"Dec  6 01:43:00 web01 python3[77]: ValueError: bad input",
    b"\x01\x02\x03 binary \x04",  # dead-lettered live (not a syslog line): not learned
]
# the same kinds of lines later, from another host, with other values, as syslog sends them
LIVE = [
    "<38>Dec  7 09:00:01 web02 sshd[3301]: Failed password for mallory from 192.0.2.9 port 4242"
    " ssh2",
    "<38>Dec  7 09:00:02 web02 sshd[3302]: Accepted publickey for zoe from 192.0.2.8 port 22 ssh2",
    "<78>Dec  7 09:00:03 web02 CRON[3400]: pam_unix(cron:session): session opened for user root"
    " by (uid=0)",
    "<11>Dec  7 09:00:04 web02 python3[88]: Traceback (most recent call last):",
    '<11>Dec  7 09:00:04 web02 python3[88]:   File "/srv/other.py", line 9, in main',
    "<11>Dec  7 09:00:04 web02 python3[88]: KeyError: 'x'",
    "<38>Dec  7 09:00:05 web02 sshd[3303]: Failed password for trudy from 192.0.2.7 port 1 ssh2",
]


def test_a_learned_template_is_matched_live(tmp_path: Path) -> None:
    config_file = demo_config_file(tmp_path)
    history = tmp_path / "messages"
    history.write_bytes(b"\n".join(HISTORY) + b"\n")
    learned = CliRunner().invoke(cli, ["patterns", "learn", str(history), "-c", config_file])
    assert learned.exit_code == 0, learned.output
    assert "12 lines, 8 messages mined" in learned.output
    assert "1 records decoded by workshop slurm were not mined" in learned.output
    assert "1 lines did not decode" in learned.output
    assert f"{history}:13: not a syslog line" in learned.output

    config = load_config(config_file)
    bus = bus_of(config)
    try:
        templates = {e.id: e.template for e in load_library(bus).entries()}
    finally:
        bus.close()
    assert "Failed password for <*> from <*> port <*> ssh2" in templates.values()
    assert not [t for t in templates.values() if "web01" in t or "sshd[" in t]

    records = [make_record("syslog", "web02", line) for line in LIVE]
    run_worker(config, records)
    assert read_topic(config, "events.NEW_PATTERN") == []
    parsed = read_topic(config, PARSED)
    assert [p["fields"]["program"] for p in parsed] == ["sshd", "sshd", "CRON", "python3", "sshd"]
    assert all(p["pattern"] in templates for p in parsed), (parsed, templates)


def _learner(tmp_path: Path, workshop: str = "syslog") -> tuple[Learner, PatternLibrary]:
    library = PatternLibrary()
    return Learner(load_config(demo_config_file(tmp_path)), workshop, library), library


def test_learning_decodes_merges_delegates_and_counts_what_does_not_decode(
    tmp_path: Path,
) -> None:
    learner, library = _learner(tmp_path)
    for n, line in enumerate(HISTORY, 1):
        learner.feed(line, "history.log", n)
    summary = learner.finish()
    assert summary.lines == 12  # the empty line is not one
    assert summary.records == 9  # the 3-line trace is one record; the bad line is none
    assert summary.mined == 8
    assert dict(summary.not_mined) == {"slurm": 1}
    assert summary.undecoded == 1
    assert summary.examples == [f"history.log:13: not a syslog line: {HISTORY[12].decode()!r}"]
    templates = sorted(e.template for e in library.entries())
    assert templates == [
        "Accepted publickey for <*> from <*> port <*> ssh2",
        "Failed password for <*> from <*> port <*> ssh2",
        "Traceback (most recent call last):",
        "pam_unix(cron:session): session opened for user root by (uid=<*>)",
    ], templates
    assert {e.workshop for e in library.entries()} == {"syslog"}


def test_gzip_history_is_read_like_plain(tmp_path: Path) -> None:
    plain, packed = tmp_path / "messages", tmp_path / "messages.1.gz"
    plain.write_bytes(b"\n".join(HISTORY) + b"\n")
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    results = []
    for path in (plain, packed):
        home = tmp_path / f"config-{path.name}"
        home.mkdir()
        learner, library = _learner(home)
        seen: list[int] = []
        learner.feed_file(str(path), seen.append)
        learner.finish()
        assert sum(seen) == path.stat().st_size
        results.append(sorted(e.template for e in library.entries()))
    assert results[0] == results[1]
    assert results[0]


def test_unknown_or_unmined_workshop_is_a_clear_error(tmp_path: Path) -> None:
    config = load_config(demo_config_file(tmp_path))
    with pytest.raises(LearnError, match=r"no workshop 'nope' .*\(its workshops: syslog, slurm"):
        Learner(config, "nope", PatternLibrary())
    with pytest.raises(LearnError, match=r"'sce' is not mined \(format kv.*mine: true"):
        Learner(config, "sce", PatternLibrary())
    mined = msgspec.structs.replace(
        config,
        workshops={
            **config.workshops,
            "sce": msgspec.structs.replace(config.workshops["sce"], mine=True),
        },
    )
    Learner(mined, "sce", PatternLibrary())  # asked for: fine
    history = tmp_path / "h.log"
    history.write_text("x\n")
    for workshop, words in (("nope", "no workshop 'nope'"), ("sce", "is not mined")):
        result = CliRunner().invoke(
            cli,
            ["patterns", "learn", str(history), "--workshop", workshop, "--out",
             str(tmp_path / "o.jsonl"), "-c", str(tmp_path / "c.yaml")],
        )  # fmt: skip
        assert result.exit_code == 1, result.output
        assert words in result.output
        assert "Traceback" not in result.output
