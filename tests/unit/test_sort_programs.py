"""Multi-line merging per program: a syslog line continues only a record of its own header's host
and program (issue 12: every sudo command of an auth log vanished into the sshd record before it),
while traces sent line by line still merge with other programs' lines between their own once
begun, and a single line is handed on as soon as the next line of its stream does not continue
it, whatever that line's program (no wait for the timeout in a busy file)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from tests.helpers.waiting import wait_for

from logfactory.bus.local import LocalBus
from logfactory.config import parse_config
from logfactory.factory import sort
from logfactory.factory.model import Position
from logfactory.factory.sort import Ready, Sorter
from logfactory.factory.worker import FactoryWorker
from logfactory.factory.workshops import build_workshops
from logfactory.record import encode_record, make_record
from logfactory.stats import StatsRegistry
from logfactory.topics import PARSED, RAW

CONFIG = """
workshops:
  syslog: {format: syslog, multiline: {timeout: 2s}}
factory:
  routes: {auth: syslog, messages: syslog, kern: syslog, app: syslog}
"""
S = 1_000_000_000
T0 = 1_795_300_000 * S

AUTH_LOG = [
    "Dec  6 01:40:11 login01 sshd[2231]: Accepted publickey for alice from 10.1.2.3 port 52214 "
    "ssh2: RSA SHA256:Yx3oT8Q2m1",
    "Dec  6 01:40:11 login01 sshd[2231]: pam_unix(sshd:session): session opened for user "
    "alice(uid=1000) by (uid=0)",
    "Dec  6 01:40:11 login01 systemd-logind[812]: New session 4711 of user alice.",
    "Dec  6 01:40:20 login01 sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; "
    "COMMAND=/usr/bin/systemctl restart nginx",
    "Dec  6 01:40:20 login01 sudo: pam_unix(sudo:session): session opened for user root(uid=0) "
    "by alice(uid=1000)",
    "Dec  6 01:40:21 login01 sudo: pam_unix(sudo:session): session closed for user root",
    "Dec  6 01:40:25 login01 sudo:      bob : TTY=pts/1 ; PWD=/home/bob ; USER=root ; "
    "COMMAND=/usr/bin/journalctl -u nginx",
    "Dec  6 01:40:26 login01 sudo:      bob : 3 incorrect password attempts ; TTY=pts/1 ; "
    "PWD=/home/bob ; USER=root ; COMMAND=/bin/bash",
    "Dec  6 01:40:30 login01 sshd[2240]: Failed password for invalid user admin from "
    "203.0.113.9 port 40022 ssh2",
]
AUTH_PROGRAMS = [
    "sshd", "sshd", "systemd-logind", "sudo", "sudo", "sudo", "sudo", "sudo", "sshd",
]  # fmt: skip

OOPS = [
    f"Dec  6 01:41:02 cn01 kernel: [ 8812.40210{i}] {m}"
    for i, m in enumerate(
        [
            "BUG: kernel NULL pointer dereference, address: 0000000000000008",
            "Oops: 0000 [#1] PREEMPT SMP NOPTI",
            "RIP: 0010:ll_file_release+0x2c/0x1d0 [lustre]",
            "Call Trace:",
            " <TASK>",
            " __fput+0x8f/0x290",
            " </TASK>",
            "---[ end trace 0000000000000000 ]---",
        ]
    )
]

JAVA = [
    "ERROR [http-nio-8080-exec-3] c.e.JobController - submit failed",
    "java.net.ConnectException: Connection refused",
    "#011at java.base/sun.nio.ch.Net.connect0(Native Method)",
    "#011at com.example.JobController.submit(JobController.java:57)",
]


def make() -> Sorter:
    cfg = parse_config(CONFIG)
    return Sorter(cfg, build_workshops(cfg))


def feed(
    sorter: Sorter, tag: str, lines: list[str], meta: dict[str, str], start: int = 0
) -> list[Ready]:
    out: list[Ready] = []
    for i, line in enumerate(lines, start):
        record = make_record(tag, "relay01", line, {**meta, "offset": i}, T0 + i)
        out += sorter.feed(record, Position("logs.raw", 0, i), T0 + i)
    return out


def by_position(out: list[Ready]) -> list[str]:
    return [record.line for record, _, _ in sorted(out, key=lambda r: r[1].offset)]


def lines_of(out: list[Ready]) -> list[str]:
    return [record.line for record, _, _ in out]


def test_in_a_busy_stream_a_single_line_waits_only_for_the_next_line() -> None:
    """Each line of an auth log is handed on when the file's next line arrives, whatever that
    line's program: not held until its own program writes again (or for the timeout)."""
    sorter = make()
    meta = {"path": "/var/log/auth.log"}
    for i, line in enumerate(AUTH_LOG):
        out = feed(sorter, "auth", [line], meta, start=i)
        assert lines_of(out) == AUTH_LOG[i - 1 : i]  # the line before, at once
        assert sorter.pending() == 1
    assert lines_of(sorter.flush_all()) == AUTH_LOG[-1:]


def test_the_issues_sudo_line_is_its_own_record_at_once() -> None:
    """The line of issue 12, after an sshd line: neither waits for the other, nor joins it."""
    sorter = make()
    meta = {"path": "/var/log/auth.log"}
    sudo = AUTH_LOG[3]
    assert feed(sorter, "auth", [AUTH_LOG[0]], meta) == []
    assert lines_of(feed(sorter, "auth", [sudo], meta, start=1)) == [AUTH_LOG[0]]
    (record, position, _), *rest = feed(sorter, "auth", [AUTH_LOG[8]], meta, start=2)
    assert rest == []
    assert record.line == sudo
    assert "lines" not in record.meta
    assert position.offset == 1
    parts = build_workshops(parse_config(CONFIG))["syslog"].decode(record)
    assert parts.fields["program"] == "sudo"


def test_a_kernel_oops_interleaved_after_its_second_line_merges_whole() -> None:
    """Once a trace has two lines it waits for its own program's lines; the other programs'
    lines between them are each handed on at the next line, single-line or not."""
    sorter = make()
    meta = {"path": "/var/log/messages"}
    lines = OOPS[:2]
    expected: list[list[str]] = [[], []]
    for i, line in enumerate(OOPS[2:]):
        lines += [AUTH_LOG[i], line]
        expected += [[], [AUTH_LOG[i]]]  # the oops' line hands on the other program's
    got = [
        lines_of(feed(sorter, "messages", [line], meta, start=i)) for i, line in enumerate(lines)
    ]
    assert got == expected
    (record, position, _), *rest = sorter.flush_all()
    assert rest == []
    assert record.line == "\n".join(OOPS)
    assert record.meta["lines"] == len(OOPS)
    assert position.offset == 0


def test_a_trace_cut_before_its_second_line_merges_from_there() -> None:
    """The price of handing single lines on at once: another program's line between a trace's
    first and second lines hands the first on alone; the rest still merges."""
    sorter = make()
    lines = [OOPS[0], AUTH_LOG[0], *OOPS[1:]]
    out = feed(sorter, "messages", lines, {"path": "/var/log/messages"}) + sorter.flush_all()
    assert lines_of(out) == [OOPS[0], AUTH_LOG[0], "\n".join(OOPS[1:])]


def test_every_line_of_an_auth_log_is_its_own_record() -> None:
    sorter = make()
    out = feed(sorter, "auth", AUTH_LOG, {"path": "/var/log/auth.log"})
    out += sorter.flush_all()
    assert by_position(out) == AUTH_LOG  # nothing glued to anything
    syslog = build_workshops(parse_config(CONFIG))["syslog"]
    decoded = [syslog.decode(r) for r, _, _ in sorted(out, key=lambda r: r[1].offset)]
    assert [parts.fields["program"] for parts in decoded] == AUTH_PROGRAMS
    assert decoded[3].message.strip() == (
        "alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/systemctl restart nginx"
    )


def test_two_sudo_commands_in_a_row_are_two_records() -> None:
    """sudo pads the user name to eight columns: its own lines look indented, yet each is new."""
    sorter = make()
    out = feed(sorter, "auth", [AUTH_LOG[3], AUTH_LOG[6], AUTH_LOG[7]], {"path": "/a"})
    out += sorter.flush_all()
    assert by_position(out) == [AUTH_LOG[3], AUTH_LOG[6], AUTH_LOG[7]]


def test_a_kernel_oops_merges_around_the_lines_of_other_programs() -> None:
    """Interleaved programs of one file each merge their own lines."""
    sorter = make()
    others = iter(AUTH_LOG)
    lines: list[str] = []
    for i, line in enumerate(OOPS):
        lines.append(line)
        if i % 2:
            lines.append(next(others))
    out = feed(sorter, "messages", lines, {"path": "/var/log/messages"})
    out += sorter.flush_all()
    merged = [r for r, _, _ in out if "lines" in r.meta]
    assert [r.line for r in merged] == ["\n".join(OOPS)]
    assert sorted(r.line for r, _, _ in out if "lines" not in r.meta) == sorted(AUTH_LOG[:4])


def test_traces_of_two_hosts_through_one_relay_merge_apart() -> None:
    """Each trace begun (its first two lines in a row), the rest of both interleave."""
    sorter = make()
    a = [f"Dec  6 01:42:00 app01 java[311]: {m}" for m in JAVA]
    b = [f"Dec  6 01:42:00 app02 java[311]: {m}" for m in JAVA]
    interleaved = [
        *a[:2],
        *b[:2],
        *(line for pair in zip(a[2:], b[2:], strict=True) for line in pair),
    ]
    out = feed(sorter, "messages", interleaved, {"peer": "10.0.0.9:514"})
    out += sorter.flush_all()
    assert sorted(r.line for r, _, _ in out) == ["\n".join(a), "\n".join(b)]


def test_a_python_traceback_sent_line_by_line_by_journald_merges() -> None:
    trace = [
        "ERROR worker: job 1234 failed",
        "Traceback (most recent call last):",
        '  File "/opt/sched/worker.py", line 88, in run',
        "    result = handler(job)",
        "ValueError: invalid literal for int() with base 10: 'eight'",
    ]
    lines = [f"Dec  6 01:43:00 cn02 sched[4242]: {m}" for m in trace]
    sorter = make()
    out = feed(sorter, "messages", [*lines[:2], AUTH_LOG[3], *lines[2:]], {"path": "/m"})
    out += sorter.flush_all()
    assert sorted(r.line for r, _, _ in out) == sorted(["\n".join(lines), AUTH_LOG[3]])


def test_a_python_traceback_in_a_file_without_headers_merges_whole() -> None:
    """Without a header nothing says who wrote a line: indentation continues, as before
    (``name : value`` too: the sudo exception is for lines behind a syslog header)."""
    trace = [
        "2026-12-06 01:44:00,004 ERROR worker: job 1234 failed",
        "Traceback (most recent call last):",
        '  File "/opt/sched/worker.py", line 90, in run',
        "    total : int = sum(job.cpus)",
        "TypeError: 'int' object is not iterable",
    ]
    sorter = make()
    out = feed(sorter, "app", [*trace, "2026-12-06 01:44:01,000 INFO worker: next"], {"path": "/w"})
    assert [r.line for r, _, _ in out] == ["\n".join(trace)]


def test_raw_newlines_after_a_header_line_join_the_latest_record() -> None:
    """A program that writes a trace with raw newlines into a syslog file: the lines without a
    header continue the record just extended, not an older one of another program."""
    sorter = make()
    lines = [
        AUTH_LOG[0],
        f"Dec  6 01:42:00 app01 java[311]: {JAVA[0]}",
        JAVA[1],
        "\tat com.example.JobController.submit(JobController.java:57)",
    ]
    out = feed(sorter, "messages", lines, {"path": "/var/log/messages"})
    out += sorter.flush_all()
    assert sorted(r.line for r, _, _ in out) == sorted([AUTH_LOG[0], "\n".join(lines[1:])])


def test_a_line_that_is_not_utf8_is_one_of_its_program_like_any_other() -> None:
    """It ends the stream's single-line record, as any line does that does not continue it,
    and leaves the other programs' traces alone."""
    sorter = make()
    meta = {"path": "/var/log/messages"}
    assert feed(sorter, "messages", [OOPS[0], OOPS[1], AUTH_LOG[0]], meta) == []
    bad = make_record("messages", "relay01", AUTH_LOG[1].encode() + b" \xff", meta, T0)
    out = sorter.feed(bad, Position("logs.raw", 0, 9), T0)
    assert [r.line for r, _, _ in out] == [AUTH_LOG[0]]
    out = feed(sorter, "messages", OOPS[2:], meta, start=10) + sorter.flush_all()
    assert [r for r, _, _ in out if r.raw is not None] == [bad]
    assert [r.line for r, _, _ in out if r is not bad] == ["\n".join(OOPS)]


def test_a_stream_holds_a_bounded_number_of_programs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the bound, the least recently extended trace is emitted, never the others."""
    monkeypatch.setattr(sort, "MAX_OPEN_PER_STREAM", 2)
    sorter = make()
    meta = {"peer": "10.0.0.9:514"}
    a = [f"Dec  6 01:42:00 app01 java[311]: {m}" for m in JAVA]
    b = [f"Dec  6 01:42:00 app02 java[311]: {m}" for m in JAVA]
    assert feed(sorter, "messages", [*a[:2], *OOPS[:2], a[2]], meta) == []  # java extended last
    assert feed(sorter, "messages", [b[0]], meta, start=5) == []  # a single line: no trace yet
    out = feed(sorter, "messages", [b[1]], meta, start=6)  # a third trace begins
    assert [r.line for r, _, _ in out] == ["\n".join(OOPS[:2])]
    assert sorter.pending() == 5
    out = feed(sorter, "messages", [AUTH_LOG[0], a[3]], meta, start=7) + sorter.flush_all()
    assert [r.line for r, _, _ in out] == [AUTH_LOG[0], "\n".join(a), "\n".join(b[:2])]


def test_snapshot_keeps_every_programs_record_and_reads_version_1() -> None:
    meta = {"path": "/var/log/messages"}
    lines = [OOPS[0], OOPS[1], AUTH_LOG[0], OOPS[2], AUTH_LOG[2]]
    reference = make()
    assert lines_of(feed(reference, "messages", lines, meta)) == [AUTH_LOG[0]]
    expected = feed(reference, "messages", OOPS[3:], meta, start=5) + reference.flush_all()

    first = make()
    assert lines_of(feed(first, "messages", lines, meta)) == [AUTH_LOG[0]]
    data = first.snapshot()
    assert json.loads(data)["version"] == 2
    second = make()
    second.restore(data)
    assert second.pending() == 4  # the oops' three lines, the logind line
    got: list[Ready] = []
    for i, line in enumerate(OOPS[3:], len(lines)):
        record = make_record("messages", "relay01", line, {**meta, "offset": i}, T0 + i)
        got += second.feed(record, Position("logs.raw", 0, i), T0 + i)
    got += second.flush_all()
    assert lines_of(got) == lines_of(expected)  # the logind line first, at the oops' next line
    assert second.snapshot() == make().snapshot()

    # what a node before per-program records stored: one record per stream
    old = json.loads(data)
    old["version"] = 1
    old["pending"] = [p for p in old["pending"] if p["first"]["line"] == OOPS[0]]
    third = make()
    third.restore(json.dumps(old).encode())
    assert third.pending() == 3
    out = feed(third, "messages", [OOPS[3]], meta) + third.flush_all()
    assert [r.line for r, _, _ in out] == ["\n".join([*OOPS[:3], OOPS[3]])]

    old["version"] = 3
    with pytest.raises(ValueError, match="version 3"):
        third.restore(json.dumps(old).encode())


def test_a_snapshot_holding_several_single_lines_loses_none() -> None:
    """A snapshot written while every program's single line was held (before single lines were
    handed on at the next line): the latest is the stream's single line again, the others wait
    for their program's next line or their timeout."""
    meta = {"path": "/var/log/auth.log"}
    pending: list[Any] = []
    for offset in (1, 2):  # sshd's line, then logind's (the latest)
        sorter = make()
        assert feed(sorter, "auth", [AUTH_LOG[offset]], meta, start=offset) == []
        pending += json.loads(sorter.snapshot())["pending"]
    second = make()
    second.restore(json.dumps({"version": 2, "pending": pending}).encode())
    assert second.pending() == 2
    assert lines_of(feed(second, "auth", [AUTH_LOG[3]], meta, start=3)) == [AUTH_LOG[2]]
    assert lines_of(second.flush_due(T0 + 1 + 2 * S)) == [AUTH_LOG[1]]  # its own timeout
    assert lines_of(second.flush_all()) == [AUTH_LOG[3]]


WORKER_CONFIG = """
node: {{name: t, data_dir: {data}}}
bus: {{partitions: 1}}
workshops:
  syslog: {{format: syslog, multiline: {{timeout: 1h}}}}
factory: {{group: g, new_patterns: false, routes: {{auth: syslog}}}}
"""


def test_the_worker_decodes_each_sudo_command_of_a_followed_auth_log(tmp_path: Path) -> None:
    """...at once: with an hour's multi-line timeout, every line but the last is decoded as
    soon as the next one is read; the last waits for a possible continuation."""
    config = parse_config(WORKER_CONFIG.format(data=tmp_path / "d"))
    bus = LocalBus(tmp_path / "d" / "bus")
    worker = FactoryWorker(config, bus, StatsRegistry("t"))
    producer = bus.producer()
    for offset, line in enumerate(AUTH_LOG):  # as the file source sends a followed file
        meta = {"path": "/var/log/auth.log", "offset": offset}
        producer.produce(RAW, encode_record(make_record("auth", "login01", line, meta)), b"login01")
    producer.flush()
    parsed = bus.consumer(None, [PARSED], "earliest")
    seen: list[dict[str, Any]] = []

    def all_but_the_last_parsed() -> bool:
        worker.process_batch(worker.consumer.poll(500, timeout=0.05))
        seen.extend(msgspec.json.decode(m.value) for m in parsed.poll(100, timeout=0))
        return len(seen) >= len(AUTH_LOG) - 1

    try:
        wait_for(all_but_the_last_parsed, what="a parsed record per auth.log line but the last")
        sudo = [r["message"] for r in seen if r["fields"]["program"] == "sudo"]
        assert len(sudo) == 5
        assert any("COMMAND=/usr/bin/systemctl restart nginx" in m for m in sudo)
        assert all("\n" not in r["message"] for r in seen)
        assert len(seen) == len(AUTH_LOG) - 1
        assert [p.sorter.pending() for p in worker.parts.values()] == [1]
    finally:
        parsed.close()
        producer.close()
        worker.close()
        bus.close()
