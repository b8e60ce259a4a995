"""The filter stage: alert templates, library alerts, mappings, NEW_PATTERN, silence."""

from __future__ import annotations

import json
from typing import Any

from logfactory.config import Config, parse_config
from logfactory.event import BUILTIN_TYPES, composite_event_id
from logfactory.factory.filter import FilterStage, FilterStats, mined_workshops
from logfactory.factory.model import Decoded, Position
from logfactory.factory.package import Outputs, Packager
from logfactory.factory.patterns.library import PatternLibrary
from logfactory.record import make_record
from logfactory.schemas import validate

T0 = 1_700_000_000_000_000_000

CONFIG = """
workshops:
  syslog: {format: syslog}
  slurm: {format: slurm}
alerts:
  - name: oom
    when: {workshop: syslog, program: kernel, message: 'Out of memory: Killed process (?P<pid>\\d+) \\((?P<proc>[^)]+)\\)'}
    subtype: OUT_OF_MEMORY
    severity: critical
    reason: "{proc} ({pid}) killed on {host}"
  - name: oom-body
    when: {workshop: syslog, message: 'Out of memory'}
    subtype: NEVER_SECOND
    reason: "second alert rule must not fire after the first"
  - name: disk
    when: {workshop: syslog, message: 'No space left on device'}
    subtype: DISK_FULL
    reason: "disk full on {host} at {time}"
    body: {host: "{host}", text: "{message}"}
mappings:
  - name: job-end
    when: {workshop: slurm, fields: {event: job_end}}
    type: JOB_STATUS
    subtype: "{state}"
    body: {job_id: "{job_id}", user: "{user}", exit_code: "{exit_code}"}
    params: "{params}"
  - name: job-any
    when: {workshop: slurm}
    type: USER_OP
    subtype: SLURM
"""  # noqa: E501 (the demo config, verbatim)


def config(extra: str = "") -> Config:
    return parse_config(CONFIG + extra)


def record(message: str, workshop: str = "syslog", t: int = T0, **fields: Any) -> Decoded:
    fields.setdefault("host", "node1")
    return Decoded(
        record=make_record(workshop, "collector", message, received=t),
        position=Position("logs.raw", 0, 7),
        workshop=workshop,
        time_ns=t,
        message=message,
        fields=fields,
    )


def stage(cfg: Config | None = None) -> FilterStage:
    return FilterStage(cfg or config(), PatternLibrary())


def test_alert_template_fires_first_match_only() -> None:
    f = stage()
    d = record("Out of memory: Killed process 4242 (java) total-vm:1kB", program="kernel")
    drafts = f.apply(d)
    assert len(drafts) == 1
    alert = drafts[0]
    assert (alert.type, alert.subtype, alert.severity) == ("ALERT", "OUT_OF_MEMORY", "critical")
    assert alert.reason == "java (4242) killed on node1"
    assert alert.body == {
        "message": d.message,
        "program": "kernel",
        "pid": "4242",
        "proc": "java",
    }
    assert alert.pattern == d.pattern
    assert d.pattern is not None
    assert d.template == "Out of memory: Killed process <*> (java) total-vm:<*>"
    assert d.pattern_status == "new"
    assert alert.id is None  # the package stage derives it from the position


def test_alert_with_configured_body_and_time() -> None:
    f = stage()
    drafts = f.apply(record("write failed: No space left on device"))
    assert drafts[0].subtype == "DISK_FULL"
    assert drafts[0].reason == "disk full on node1 at 2023-11-14T22:13:20.000000Z"
    assert drafts[0].body == {"host": "node1", "text": "write failed: No space left on device"}


def test_new_pattern_once_with_a_deterministic_id() -> None:
    f = stage()
    d = record("session opened for user root")
    drafts = f.apply(d)
    assert len(drafts) == 1
    new = drafts[0]
    assert new.type == "NEW_PATTERN"
    assert new.body == {
        "template": "session opened for user root",
        "example": "session opened for user root",
        "workshop": "syslog",
        "first_seen": "2023-11-14T22:13:20.000000Z",
        "pattern": d.pattern,
    }
    assert new.pattern == d.pattern
    assert new.id == composite_event_id("new-pattern", d.pattern or "", 0)
    assert f.apply(record("session opened for user root", t=T0 + 1)) == []
    # the same stream in a fresh worker announces the same event
    again = stage().apply(record("session opened for user root"))
    assert again[0].id == new.id


def test_generalised_template_is_not_announced_again() -> None:
    f = stage()
    assert f.apply(record("session opened for user root"))[0].type == "NEW_PATTERN"
    # one other word is not yet evidence of a parameter: a template of its own
    assert f.apply(record("session opened for user alice"))[0].type == "NEW_PATTERN"
    # a third word in the same place proves it: the general template only widens the two
    assert f.apply(record("session opened for user bob")) == []
    assert f.apply(record("session opened for user carol")) == []


def test_new_patterns_can_be_disabled_or_limited() -> None:
    off = stage(config("factory: {new_patterns: false}\n"))
    assert off.apply(record("hello there")) == []
    limited = stage(config("factory: {pattern_workshops: [slurm]}\n"))
    assert limited.apply(record("hello there")) == []
    assert limited.stats.normal == 1


def test_library_alert_status_makes_a_pattern_alert() -> None:
    lib = PatternLibrary()
    f = FilterStage(config(), lib)
    d = record("fan 3 failed")
    f.apply(d)
    assert d.pattern is not None
    lib.set_status(d.pattern, "alert", reason="fan failure", severity="medium")
    drafts = f.apply(record("fan 4 failed"))
    assert len(drafts) == 1
    assert (drafts[0].type, drafts[0].subtype) == ("ALERT", "PATTERN_ALERT")
    assert (drafts[0].reason, drafts[0].severity) == ("fan failure", "medium")
    assert drafts[0].body["template"] == "fan <*> failed"


def test_config_alert_wins_over_library_alert() -> None:
    lib = PatternLibrary()
    f = FilterStage(config(), lib)
    d = record("write failed: No space left on device")
    f.apply(d)
    assert d.pattern is not None
    lib.set_status(d.pattern, "alert", reason="from review")
    drafts = f.apply(record("write failed: No space left on device"))
    assert [x.subtype for x in drafts] == ["DISK_FULL"]


def test_every_matching_mapping_makes_an_event() -> None:
    f = stage()
    d = record(
        "job 42 ended",
        workshop="slurm",
        event="job_end",
        job_id=42,
        user="alice",
        exit_code=0,
        state="COMPLETED",
        params={"cpus": 8},
    )
    drafts = f.apply(d)
    assert [(x.type, x.subtype) for x in drafts] == [
        ("JOB_STATUS", "COMPLETED"),
        ("USER_OP", "SLURM"),
    ]
    job = drafts[0]
    assert job.body == {"job_id": 42, "user": "alice", "exit_code": 0}
    assert job.params == {"cpus": 8}
    assert drafts[1].body == {"message": "job 42 ended"}  # no body configured
    assert drafts[1].params is None
    assert f.stats.mapped == 1


def test_known_normal_is_not_distributed() -> None:
    lib = PatternLibrary()
    f = FilterStage(config(), lib)
    d = record("cron job ran")
    f.apply(d)
    assert d.pattern is not None
    lib.set_status(d.pattern, "normal")
    d2 = record("cron job ran")
    assert f.apply(d2) == []
    assert d2.pattern_status == "normal"


def test_stats_count_outcomes() -> None:
    f = stage()
    f.apply(record("Out of memory: Killed process 1 (x) total-vm:1kB", program="kernel"))
    f.apply(record("brand new line"))
    f.apply(record("brand new line"))
    f.apply(record("x", workshop="slurm"))
    assert f.stats == FilterStats(records=4, alerts=1, pattern_alerts=0, mapped=1, new=1, normal=1)


def test_odd_records_do_not_crash() -> None:
    f = stage()
    for message in ("", "\x00", "\ud800", "{unbalanced", "é" * 5000):
        f.apply(record(message))
    drafts = f.apply(record("job", workshop="slurm", event="job_end"))  # fields missing
    assert drafts[0].subtype is None
    assert drafts[0].body == {"job_id": None, "user": None, "exit_code": None}


# -- which workshops are mined (WorkshopConfig.mine) ------------------------------------------
MINING = """
workshops:
  syslog: {format: syslog}
  sce: {format: kv, fields: [time, host, user, op]}
  apps: {format: json}
  slurm: {format: slurm}
"""


def test_structured_workshops_are_not_mined_by_default() -> None:
    """One template per user (``...|usr14|<*>|QUERY_JOB``) is nothing a person wants to review:
    kv, json and slurm records stay out of the library and carry no pattern id."""
    cfg = parse_config(MINING)
    assert mined_workshops(cfg) == {"syslog"}
    lib = PatternLibrary()
    f = FilterStage(cfg, lib)
    for workshop in ("sce", "apps", "slurm"):
        for user in ("usr1", "usr2", "usr3", "usr4"):
            d = record(f"2026-11-22 00:10:42|login01|{user}|QUERY_JOB", workshop=workshop)
            assert f.apply(d) == []
            assert (d.pattern, d.template, d.pattern_status) == (None, None, None)
    assert len(lib) == 0
    assert f.stats.new == 0
    assert f.stats.normal == 12
    # free text still is
    d = record("session opened for user root")
    assert [x.type for x in f.apply(d)] == ["NEW_PATTERN"]
    assert [e.workshop for e in lib.entries()] == ["syslog"]


def test_mine_option_overrides_the_format_default() -> None:
    cfg = parse_config(
        MINING.replace("{format: json}", "{format: json, mine: true}").replace(
            "syslog: {format: syslog}", "syslog: {format: syslog, mine: false}"
        )
    )
    assert mined_workshops(cfg) == {"apps"}
    f = FilterStage(cfg, PatternLibrary())
    assert f.apply(record("session opened for user root")) == []
    d = record("installed gromacs 2024.3", workshop="apps")
    assert [x.type for x in f.apply(d)] == ["NEW_PATTERN"]
    assert d.pattern is not None


def test_pattern_workshops_of_old_configs_keep_working() -> None:
    """Before ``mine`` existed, a config listed the workshops to announce; a structured one
    listed there stays mined and announced, the unlisted free text is mined, not announced."""
    cfg = parse_config(MINING + "factory: {pattern_workshops: [sce]}\n")
    assert mined_workshops(cfg) == {"syslog", "sce"}
    lib = PatternLibrary()
    f = FilterStage(cfg, lib)
    assert [x.type for x in f.apply(record("a|b|c|QUERY_JOB", workshop="sce"))] == ["NEW_PATTERN"]
    assert f.apply(record("session opened for user root")) == []
    assert sorted(e.workshop for e in lib.entries()) == ["sce", "syslog"]
    explicit = parse_config(
        MINING.replace("fields: [time, host, user, op]}", "fields: [time, host, user, op], "
                       "mine: false}") + "factory: {pattern_workshops: [sce]}\n"
    )  # fmt: skip
    assert mined_workshops(explicit) == {"syslog"}


def test_events_of_unmined_workshops_are_valid_envelopes_without_a_pattern() -> None:
    f = stage()  # CONFIG: slurm is not mined
    d = record("job 42 ended", workshop="slurm", event="job_end", job_id="42", state="COMPLETED")
    drafts = f.apply(d)
    assert [x.type for x in drafts] == ["JOB_STATUS", "USER_OP"]
    out = Outputs()
    Packager({t: f"events.{t}" for t in BUILTIN_TYPES}).add_record(out, d, drafts)
    parsed, *events = [json.loads(value) for _, _, value in out.messages]
    assert "pattern" not in parsed
    assert "status" not in parsed
    for envelope in events:
        assert "pattern" not in envelope["header"]
        # (the bodies are this test config's, not the types' contract: the header's is checked)
        assert [p for p in validate(envelope) if p.startswith("header")] == []
