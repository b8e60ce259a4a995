"""Sort stage: routing, multi-line merging of real traces, timeouts, caps, durable snapshots."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from logfactory.config import parse_config
from logfactory.factory.model import DecodeError, Position
from logfactory.factory.sort import (
    _FAST_CONTINUATION,
    DEFAULT_CONTINUATION,
    Ready,
    Sorter,
    _header,
)
from logfactory.factory.workshops.base import build_workshops
from logfactory.record import Record, make_record

CONFIG = r"""
workshops:
  syslog: {format: syslog, multiline: {timeout: 2s}}
  plain: {format: syslog}
  startonly:
    format: syslog
    multiline: {start: '^\d{4}-\d\d-\d\d ', timeout: 500ms, max_lines: 5}
  both:
    format: syslog
    multiline: {start: '^BEGIN', continuation: '^\s'}
  json: {format: json}
factory:
  routes: {messages: syslog, kern: syslog, app: syslog, tail: plain}
"""
S = 1_000_000_000
T0 = 1_795_300_000 * S

JAVA = [
    "2026-11-21 22:38:28,123 ERROR [main] com.example.App - request failed",
    "java.lang.IllegalStateException: boom",
    "\tat com.example.App.run(App.java:42)",
    "\tat com.example.App.main(App.java:12)",
    "Caused by: java.io.IOException: disk quota exceeded",
    "\tat com.example.Store.write(Store.java:88)",
    "\t... 12 more",
]

JAVA_VIA_RSYSLOG = [
    f"Nov 21 22:38:28 app01 java[311]: {m}"
    for m in [
        "ERROR [http-nio-8080-exec-3] c.e.JobController - submit failed",
        "org.springframework.web.client.ResourceAccessException: I/O error on POST request; "
        "nested exception is java.net.ConnectException: Connection refused",
        "#011at org.springframework.web.client.RestTemplate.doExecute(RestTemplate.java:785)",
        "#011at com.example.JobController.submit(JobController.java:57)",
        "Caused by: java.net.ConnectException: Connection refused",
        "#011at java.base/sun.nio.ch.Net.connect0(Native Method)",
        "#011... 12 more",
    ]
]

PYTHON = [
    "2026-11-21 22:38:28,004 ERROR worker: job 1234 failed",
    "Traceback (most recent call last):",
    '  File "/opt/sched/worker.py", line 88, in run',
    "    result = handler(job)",
    "             ^^^^^^^^^^^^",
    '  File "/opt/sched/handlers.py", line 31, in handler',
    '    return int(job["cpus"])',
    "           ^^^^^^^^^^^^^^^^",
    "ValueError: invalid literal for int() with base 10: 'eight'",
    "",
    "During handling of the above exception, another exception occurred:",
    "",
    "Traceback (most recent call last):",
    '  File "/opt/sched/worker.py", line 90, in run',
    "    raise JobError(job.id) from None",
    "sched.errors.JobError: 1234",
]

OOPS = [
    f"Nov 21 22:38:28 cn01 kernel: [ 8812.4021{i:02d}] {m}"
    for i, m in enumerate(
        [
            "BUG: kernel NULL pointer dereference, address: 0000000000000008",
            "#PF: supervisor read access in kernel mode",
            "#PF: error_code(0x0000) - not-present page",
            "PGD 0 P4D 0 ",
            "Oops: 0000 [#1] PREEMPT SMP NOPTI",
            "CPU: 3 PID: 2231 Comm: kworker/3:2 Tainted: G           OE      6.1.0-18-amd64 #1",
            "Hardware name: Dell Inc. PowerEdge R640/0W23H8, BIOS 2.19.1 06/15/2023",
            "Workqueue: events lustre_work_fn [lustre]",
            "RIP: 0010:ll_file_release+0x2c/0x1d0 [lustre]",
            "Code: 0f 1f 44 00 00 41 57 41 56 41 55 41 54 55 53 48 8b 47 08 <48> 8b 58 08",
            "RSP: 0018:ffffb1e3c1a4fd68 EFLAGS: 00010246",
            "RAX: 0000000000000000 RBX: ffff9b6a4c1e8000 RCX: 0000000000000000",
            "R10: 0000000000000000 R11: 0000000000000000 R12: ffff9b6a4c1e8000",
            "FS:  0000000000000000(0000) GS:ffff9b79bfcc0000(0000) knlGS:0000000000000000",
            "CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033",
            "CR2: 0000000000000008 CR3: 000000010a80a002 CR4: 00000000007706e0",
            "Call Trace:",
            " <TASK>",
            " ? __die+0x23/0x70",
            " ? page_fault_oops+0x17d/0x4c0",
            " __fput+0x8f/0x290",
            " process_one_work+0x1c7/0x380",
            " </TASK>",
            "Modules linked in: lustre(OE) lmv(OE) mdc(OE) lov(OE) osc(OE) ptlrpc(OE)",
            "CR2: 0000000000000008",
            "---[ end trace 0000000000000000 ]---",
        ]
    )
]


def make(config: str = CONFIG) -> Sorter:
    cfg = parse_config(config)
    return Sorter(cfg, build_workshops(cfg))


def feed_lines(
    sorter: Sorter, tag: str, lines: list[str], path: str = "/var/log/app.log", start: int = 0
) -> list[Ready]:
    out: list[Ready] = []
    for i, line in enumerate(lines, start):
        record = make_record(tag, "app01", line, {"path": path, "offset": i}, T0 + i * 1000)
        out += sorter.feed(record, Position("logs.raw", 2, 100 + i), T0 + i * 1000)
    return out


def test_routes_by_table_then_by_name_else_dead_letter() -> None:
    sorter = make()
    assert sorter.route(make_record("messages", "h", "x")) == "syslog"
    assert sorter.route(make_record("json", "h", "{}")) == "json"
    with pytest.raises(DecodeError, match="unknown source tag 'snmp'; add a route"):
        sorter.route(make_record("snmp", "h", "x"))
    with pytest.raises(DecodeError, match="unknown source tag"):
        sorter.feed(make_record("snmp", "h", "x"), Position("logs.raw", 0, 0), T0)


def test_workshops_without_multiline_pass_straight_through() -> None:
    sorter = make()
    record = make_record("tail", "h", "\tat looks.like.a.Continuation(X.java:1)")
    position = Position("logs.raw", 0, 7)
    assert sorter.feed(record, position, T0) == [(record, position, "plain")]
    assert sorter.pending() == 0


def test_java_stack_trace_merges_into_one_record() -> None:
    sorter = make()
    assert feed_lines(sorter, "app", JAVA) == []
    assert sorter.pending() == len(JAVA)
    out = feed_lines(sorter, "app", ["2026-11-21 22:38:29,001 INFO [main] next"], start=7)
    assert len(out) == 1
    record, position, workshop = out[0]
    assert record.line == "\n".join(JAVA)
    assert record.meta == {"path": "/var/log/app.log", "offset": 0, "lines": 7}
    assert record.received == T0
    assert position == Position("logs.raw", 2, 100)
    assert workshop == "syslog"
    assert sorter.pending() == 1  # the INFO line waits for possible continuations


def test_java_trace_inside_syslog_framing_merges_and_decodes_as_one_message() -> None:
    sorter = make()
    assert feed_lines(sorter, "messages", JAVA_VIA_RSYSLOG) == []
    (record, _, workshop), *rest = sorter.flush_all()
    assert rest == []
    assert record.meta["lines"] == 7
    parts = build_workshops(parse_config(CONFIG))[workshop].decode(record)
    assert parts.fields["program"] == "java"
    assert parts.message.split("\n")[2] == (
        "#011at org.springframework.web.client.RestTemplate.doExecute(RestTemplate.java:785)"
    )
    assert parts.message.startswith("ERROR [http-nio-8080-exec-3]")


def test_python_traceback_with_chained_exception_merges() -> None:
    sorter = make()
    out = feed_lines(sorter, "app", [*PYTHON, "2026-11-21 22:38:28,010 INFO worker: next job"])
    assert len(out) == 1
    assert out[0][0].line == "\n".join(PYTHON)
    assert out[0][0].meta["lines"] == len(PYTHON)


def test_kernel_oops_merges_and_ends_at_the_next_normal_line() -> None:
    sorter = make()
    normal = "Nov 21 22:38:29 cn01 kernel: [ 8815.000001] Lustre: recovery complete"
    out = feed_lines(sorter, "kern", [*OOPS, normal], path="/var/log/kern.log")
    assert len(out) == 1
    record = out[0][0]
    assert record.meta["lines"] == len(OOPS)
    parts = build_workshops(parse_config(CONFIG))["syslog"].decode(record)
    lines = parts.message.split("\n")
    assert lines[0] == "BUG: kernel NULL pointer dereference, address: 0000000000000008"
    assert lines[17] == " <TASK>"
    assert lines[-1] == "---[ end trace 0000000000000000 ]---"
    assert parts.fields["uptime"] == pytest.approx(8812.402100)


def test_ordinary_lines_are_not_merged() -> None:
    sorter = make()
    lines = [
        "Nov 21 22:38:28 login01 sshd[1]: Accepted password for usr1 from 10.0.0.1 port 22 ssh2",
        "Nov 21 22:38:28 login01 sshd[1]: pam_unix(sshd:session): session opened for user usr1",
        "Nov 21 22:38:29 login01 sshd[2]: error: PAM: Authentication failure for root",
        "Nov 21 22:38:29 login01 kernel: [ 8812.1] usb 1-1: new high-speed USB device",
    ]
    out = feed_lines(sorter, "messages", lines)
    # a single line is handed on when the next line of its stream does not continue it,
    # whatever that line's program (the kernel line hands on the sshd line at once)
    assert [r.line for r, _, _ in out] == lines[:3]
    assert sorter.pending() == 1
    out += sorter.flush_all()
    assert [r.line for r, _, _ in out] == lines
    assert all("lines" not in r.meta for r, _, _ in out)


def test_streams_are_kept_apart_by_path_and_host() -> None:
    sorter = make()
    a = make_record("app", "app01", JAVA[0], {"path": "/a.log"}, T0)
    b = make_record("app", "app01", JAVA[0], {"path": "/b.log"}, T0)
    c = make_record("app", "app02", JAVA[0], {"path": "/a.log"}, T0)
    for i, record in enumerate((a, b, c)):
        assert sorter.feed(record, Position("logs.raw", 0, i), T0) == []
    cont = make_record("app", "app01", JAVA[2], {"path": "/b.log"}, T0)
    assert sorter.feed(cont, Position("logs.raw", 0, 3), T0) == []
    out = {r.meta["path"] + r.host: r for r, _, _ in sorter.flush_all()}
    assert out["/b.logapp01"].meta["lines"] == 2
    assert out["/a.logapp01"].line == JAVA[0]
    assert out["/a.logapp02"].line == JAVA[0]


def test_idle_record_flushes_after_the_timeout() -> None:
    sorter = make()
    feed_lines(sorter, "app", JAVA[:3])  # last line fed at T0 + 2000 ns
    assert sorter.flush_due(T0 + 2 * S) == []
    (record, position, _), *rest = sorter.flush_due(T0 + 2000 + 2 * S)
    assert rest == []
    assert record.meta["lines"] == 3
    assert position.offset == 100
    assert sorter.pending() == 0
    assert sorter.flush_due(T0 + 10 * S) == []


def test_start_only_mode_and_max_lines() -> None:
    sorter = make()
    lines = ["2026-11-21 22:38:28 begin", *[f"detail {i}" for i in range(6)]]
    out = feed_lines(sorter, "startonly", lines)
    # the 5th line completes a capped record; the rest find no open record and pass alone
    assert [r.meta.get("lines") for r, _, _ in out] == [5, None, None]
    assert out[0][0].line == "\n".join(lines[:5])
    assert [r.line for r, _, _ in out[1:]] == ["detail 4", "detail 5"]
    orphan = feed_lines(sorter, "startonly", ["orphan"])
    assert [(r.line, r.meta.get("lines"), w) for r, _, w in orphan] == [
        ("orphan", None, "startonly")
    ]
    assert sorter.pending() == 0


def test_start_and_continuation_mode() -> None:
    sorter = make()
    out = feed_lines(sorter, "both", ["BEGIN job", " step 1", " step 2", "unrelated", "BEGIN x"])
    assert [r.line for r, _, _ in out] == ["BEGIN job\n step 1\n step 2", "unrelated"]
    assert sorter.pending() == 1
    orphan = feed_lines(sorter, "both", [" orphan continuation"], path="/other")
    assert [(r.line, r.meta.get("lines")) for r, _, _ in orphan] == [(" orphan continuation", None)]
    assert sorter.pending() == 1  # only "BEGIN x" on the first stream


def test_invalid_utf8_merges_like_any_line_and_keeps_its_bytes() -> None:
    sorter = make()
    feed_lines(sorter, "app", JAVA[:2])
    bad = make_record("app", "app01", b"\tat \xff", {"path": "/var/log/app.log"}, T0)
    assert sorter.feed(bad, Position("logs.raw", 2, 200), T0) == []
    [(merged, _, _)] = sorter.flush_all()
    assert merged.line == "\n".join([*JAVA[:2], "\tat \ufffd"])
    assert merged.raw == "\n".join(JAVA[:2]).encode() + b"\n\tat \xff"


def test_snapshot_restore_round_trip_gives_the_same_records() -> None:
    reference = make()
    expected = feed_lines(reference, "app", JAVA) + reference.flush_all()

    first = make()
    assert feed_lines(first, "app", JAVA[:4]) == []
    data = first.snapshot()
    assert isinstance(data, bytes)
    assert b"java.lang.IllegalStateException" in data

    second = make()  # a new worker after a crash
    second.restore(data)
    assert second.pending() == 4
    got = feed_lines(second, "app", JAVA[4:], start=4) + second.flush_all()
    assert got == expected
    assert second.snapshot() == make().snapshot()


def test_restore_keeps_deadlines_and_handles_empty_and_bad_data() -> None:
    first = make()
    feed_lines(first, "app", JAVA[:2])
    second = make()
    second.restore(first.snapshot())
    assert second.flush_due(T0 + S) == []
    assert len(second.flush_due(T0 + 1000 + 2 * S)) == 1
    second.restore(b"")
    assert second.pending() == 0
    with pytest.raises(ValueError, match="not a sort-stage snapshot"):
        second.restore(b'{"version": 1}')


def test_peer_meta_is_a_stream_key_too() -> None:
    sorter = make()
    for i, peer in enumerate(["10.0.0.1:514", "10.0.0.2:514"]):
        record = make_record("messages", "h", JAVA_VIA_RSYSLOG[0], {"peer": peer}, T0)
        assert sorter.feed(record, Position("logs.raw", 0, i), T0) == []
    assert sorter.pending() == 2
    assert len(sorter.flush_all()) == 2


# -- the fast paths keep the documented behaviour -------------------------------------------------
# Pieces of headers, uptimes and every alternative of the trace body, and near misses of them
# (the exception-name rule's dots and suffixes, too many digits, Unicode digits and spaces).
PIECES = [
    "<13>", "<1234>", "Nov 21 22:38:28 ", "Nov  1 22:38:28.123 ", "Nov 21 22:38:28.", "Nov 1 ",
    "2026-11-21T22:38:28Z ", "2026-11-21T22:38 ", "host ", "host: ", "prog: ", "prog[12]: ",
    "prog[]: ", "prog[x]: ", "kernel: ", ": ", "] ", "[ 8812.402100] ", "[8812.4] ", "[ 1.] ",
    " ", "  ", "\t", "\n", "#011at x", "Caused by: x", "Suppressed: ", "... 12 more",
    "... 3 common frames omitted", "Exception in thread ", "Traceback (most recent call last):",
    "During handling of the above exception", "The above exception was the direct cause",
    "java.lang.IllegalStateException: boom", "a.Error:", "a.xError:", "Error:", "xError",
    "SystemExit", "KeyboardInterrupt", "java.lang.Throwable:", "a$b.C$1Exception:", "x..Error:",
    "x.Error.:", "é.Error:", "RIP: ", "R10: ", "R1: ", "R123: ", "IP:", "FS:  ", "CR2: ",
    "Code: ", "Call Trace:", "Modules linked in: ", "Hardware name: ", "Workqueue: ", "#PF: ",
    "PGD 0 ", "P4D ff ", "Oops: ", "CPU: 3 PID: ", "---[ end ", "Kernel panic - not syncing",
    "<TASK>", "</IRQ>", "<EOI>", ":", "]", "[", "x", "New session", "\u0663", "\u2003", ".", "$",
    "   alice : ", "alice : ", " : ", "sudo: ", "a: ", "login01 ",
]  # fmt: skip
REFERENCE = re.compile(DEFAULT_CONTINUATION)


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(PIECES) | st.text(max_size=4), max_size=8).map("".join))
def test_fast_default_continuation_matches_the_same_lines(line: str) -> None:
    assert (_FAST_CONTINUATION.search(line) is None) == (REFERENCE.search(line) is None)


def test_fast_default_continuation_on_the_sample_traces() -> None:
    samples = [*JAVA, *JAVA_VIA_RSYSLOG, *PYTHON, *OOPS, "x.Error:", "a.Error:", "Nov 1 "]
    assert [_FAST_CONTINUATION.search(x) is not None for x in samples] == [
        REFERENCE.search(x) is not None for x in samples
    ]
    # the near misses: a suffix right after a dot or at the very start is no exception name
    assert [REFERENCE.search(x) is not None for x in ["a.xError:", "a.Error:", "Error:"]] == [
        True, False, False,
    ]  # fmt: skip


# The header's host and program, written plainly (the header of DEFAULT_CONTINUATION, with
# groups): what a line's program is for the merging rules.
PLAIN_HEADER = re.compile(
    r"(?:<\d{1,3}>)?(?:[A-Z][a-z]{2} +\d{1,2} \d\d:\d\d:\d\d(?:\.\d+)?|\d{4}-\d\d-\d\dT\S+) +"
    r"(?:(\S+) +)?([^\s\[\]:]+)(?:\[\d*\])?: "
)
PROGRAM_LINES = st.lists(st.sampled_from(PIECES) | st.text(max_size=4), max_size=8).map("".join)


@settings(max_examples=1500, deadline=None)
@given(PROGRAM_LINES)
@example("Nov 21 22:38:28 a: b[12]: x")
def test_a_lines_program_is_read_from_the_default_patterns_header(line: str) -> None:
    plain, fast = PLAIN_HEADER.match(line), _header(line)
    assert (fast is None) == (plain is None)
    if plain is not None and fast is not None:
        assert fast.group(0, 1, 2) == plain.group(0, 1, 2)


@settings(max_examples=1500, deadline=None)
@given(PROGRAM_LINES)
@example("Nov 21 22:38:28 a: RIP: x")  # host "a:" and program "RIP", or program "a" and a register
@example("Dec  6 01:40:20 login01 sudo:    alice : TTY=pts/0 ; COMMAND=/bin/ls")
@example("Dec  6 01:40:20 login01 python3[7]:     total : int = sum(cpus)")
def test_a_line_continues_its_programs_record_exactly_when_the_default_pattern_matches(
    line: str,
) -> None:
    """The sorter reads the header once for the program and the continuation; its answer is
    DEFAULT_CONTINUATION's, for a record of the line's own program."""
    header = PLAIN_HEADER.match(line)
    opener = (header.group(0) if header else "") + "opener"
    sorter = make()
    meta = {"path": "/var/log/messages"}
    assert sorter.feed(make_record("messages", "h", opener, meta), Position("t", 0, 0), T0) == []
    out = sorter.feed(make_record("messages", "h", line, meta), Position("t", 0, 1), T0)
    merged = REFERENCE.search(line) is not None
    assert [r.line for r, _, _ in out] == ([] if merged else [opener])
    assert sorter.pending() == (2 if merged else 1)


LINES = [
    *JAVA[:3],  # no header: they continue the stream's latest record, whatever its program
    *OOPS[:3],
    "Nov 21 22:38:28 h sshd[1]: hello",
    "Nov 21 22:38:29 h sshd[2]:   indented",
    "Dec  6 01:40:20 h sudo:    alice : TTY=pts/0 ; PWD=/root ; USER=root ; COMMAND=/bin/ls",
    "Nov 21 22:38:28 h2 sshd[1]: hello",
    JAVA_VIA_RSYSLOG[0],
    JAVA_VIA_RSYSLOG[3],
    "plain",
    " indented",
    "",
]


def reference_merge(
    events: list[tuple[str, int]], continuation: re.Pattern[str], max_lines: int
) -> list[tuple[str, str | None, int | None]]:
    """The documented continuation-only rules, written plainly: (line, path, lines) per output
    (a path "" is no path: the stream of the host). Per path, the open records as
    (program, first event, lines) in the order they were last extended; the records one line
    ends come out in the order of their first lines, and so do those flushed at the end."""
    opened: dict[str, list[tuple[Any, int, list[str]]]] = {}
    out: list[tuple[str, str | None, int | None]] = []

    def close(path: str, ended: list[tuple[Any, int, list[str]]]) -> None:
        for _, _, lines in sorted(ended, key=lambda record: record[1]):
            out.append(("\n".join(lines), path or None, len(lines) if len(lines) > 1 else None))

    for i, (path, index) in enumerate(events):
        line = LINES[index]
        header = PLAIN_HEADER.match(line)
        program = header.group(1, 2) if header else None
        records = opened.setdefault(path, [])
        programs = [p for p, _, _ in records]
        # the record the line would continue: its program's; without a header, the latest
        target = records[-1][0] if program is None and records else program
        ended = []
        if target in programs and continuation.search(line) is not None:
            joined = records.pop(programs.index(target))
            joined[2].append(line)
        else:
            if program in programs:
                ended.append(records.pop(programs.index(program)))
            joined = (program, i, [line])
        # every other single-line record: the line after it did not continue it
        ended += [r for r in records if len(r[2]) == 1]
        records[:] = [r for r in records if len(r[2]) > 1]
        if len(joined[2]) >= max_lines:
            ended.append(joined)
        else:
            records.append(joined)  # the latest last
        close(path, ended)
    close_all = [(path, r) for path, records in opened.items() for r in records]
    for path, record in sorted(close_all, key=lambda pr: pr[1][1]):
        close(path, [record])
    return out


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["", "/a", "/b"]), st.integers(0, len(LINES) - 1))),
    st.sampled_from([None, r"^\s"]),
    st.integers(1, 4),
)
def test_merging_follows_the_documented_rules(
    events: list[tuple[str, int]], continuation: str | None, max_lines: int
) -> None:
    multiline: dict[str, Any] = {"max_lines": max_lines}
    if continuation is not None:
        multiline["continuation"] = continuation
    # JSON is YAML: no quoting rules to get wrong
    sorter = make(json.dumps({"workshops": {"app": {"format": "syslog", "multiline": multiline}}}))
    got: list[Ready] = []
    for i, (path, index) in enumerate(events):
        meta: dict[str, Any] = {"path": path} if path else {}
        record = make_record("app", "h", LINES[index], meta, T0 + i)
        got += sorter.feed(record, Position("logs.raw", 0, i), T0 + i)
    got += sorter.flush_all()
    pattern = REFERENCE if continuation is None else re.compile(continuation)
    assert [(r.line, r.meta.get("path"), r.meta.get("lines")) for r, _, _ in got] == (
        reference_merge(events, pattern, max_lines)
    )


def test_max_lines_one_hands_every_line_on_at_once() -> None:
    sorter = make("workshops: {app: {format: syslog, multiline: {max_lines: 1}}}")
    record = make_record("app", "h", "first", {}, T0)
    assert sorter.feed(record, Position("logs.raw", 0, 0), T0) == [
        (record, Position("logs.raw", 0, 0), "app")
    ]
    cont = make_record("app", "h", "\tat x", {}, T0)
    assert [r for r, _, _ in sorter.feed(cont, Position("logs.raw", 0, 1), T0)] == [cont]
    assert sorter.pending() == 0


def test_a_held_line_is_handed_on_unchanged_when_the_next_line_arrives() -> None:
    sorter = make()
    first = make_record("messages", "h", "Nov 21 22:38:28 h sshd[1]: one", {"peer": "p"}, T0)
    second = make_record("messages", "h", "Nov 21 22:38:29 h sshd[1]: two", {"peer": "p"}, T0)
    assert sorter.feed(first, Position("logs.raw", 0, 0), T0) == []
    out = sorter.feed(second, Position("logs.raw", 0, 1), T0 + S)
    assert out == [(first, Position("logs.raw", 0, 0), "syslog")]
    assert out[0][0] is first
    (held, position, _), *_ = sorter.flush_due(T0 + 3 * S)
    assert isinstance(held, Record)
    assert held is second
    assert position == Position("logs.raw", 0, 1)


def test_next_deadline_is_the_earliest_open_timeout() -> None:
    from logfactory.config import parse_config
    from logfactory.factory.model import Position
    from logfactory.factory.sort import Sorter
    from logfactory.factory.workshops.base import build_workshops
    from logfactory.record import make_record

    config = parse_config("workshops:\n  syslog: {format: syslog, multiline: {timeout: 1s}}\n")
    sorter = Sorter(config, build_workshops(config))
    assert sorter.next_deadline() is None
    sorter.feed(make_record("syslog", "a", b"first line"), Position("t", 0, 0), 1_000)
    sorter.feed(make_record("syslog", "b", b"other host"), Position("t", 0, 1), 5_000)
    assert sorter.next_deadline() == 1_000 + 1_000_000_000
    sorter.flush_all()
    assert sorter.next_deadline() is None
