"""Sort stage: routing, multi-line merging of real traces, timeouts, caps, durable snapshots.

Which lines the default rules merge is checked against records of known structure (built line by
line, each line labelled with its record, then interleaved as real files and relays interleave
them), never against the production pattern itself: a test that asks the pattern what the
pattern should do could not catch a wrong rule (a sudo line merged into the sshd record before
it passed every test that way)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, NamedTuple

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
from logfactory.factory.workshops import build_workshops
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
    "   alice : ", "alice : ", " : ", "sudo: ", "a: ", "login01 ", "Exception", "a.Exception:",
    "java.lang.Error", ".Exit",
]  # fmt: skip
# The plain pattern the fast one must equal: the reference of an optimisation only, never an
# oracle for which lines continue a record (that is what the known-structure test below checks).
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
    # a suffix after a dot is a name (java.lang.Exception); alone only Python's Exception,
    # not "Error: ...", how many programs begin an ordinary message
    names = ["a.xError:", "a.Error:", "java.lang.Exception: x", "Exception: x", "Error: x"]
    assert [REFERENCE.search(x) is not None for x in names] == [True, True, True, True, False]


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
    st.sampled_from([r"^\s", r"^(?:\s|Caused by: |#011)", r"^(?:\S+ ){5} "]),
    st.integers(1, 4),
)
def test_merging_follows_the_documented_rules(
    events: list[tuple[str, int]], continuation: str, max_lines: int
) -> None:
    """The mechanics (per stream and program, max_lines, the order records come out in) for a
    continuation pattern the user gives, which is itself the specification of which lines
    continue. Which lines the default pattern continues is tested without any pattern by
    test_the_default_rules_give_back_the_records_they_were_made_of."""
    multiline: dict[str, Any] = {"max_lines": max_lines, "continuation": continuation}
    # JSON is YAML: no quoting rules to get wrong
    sorter = make(json.dumps({"workshops": {"app": {"format": "syslog", "multiline": multiline}}}))
    got: list[Ready] = []
    for i, (path, index) in enumerate(events):
        meta: dict[str, Any] = {"path": path} if path else {}
        record = make_record("app", "h", LINES[index], meta, T0 + i)
        got += sorter.feed(record, Position("logs.raw", 0, i), T0 + i)
    got += sorter.flush_all()
    assert [(r.line, r.meta.get("path"), r.meta.get("lines")) for r, _, _ in got] == (
        reference_merge(events, re.compile(continuation), max_lines)
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
    from logfactory.factory.workshops import build_workshops
    from logfactory.record import make_record

    config = parse_config("workshops:\n  syslog: {format: syslog, multiline: {timeout: 1s}}\n")
    sorter = Sorter(config, build_workshops(config))
    assert sorter.next_deadline() is None
    sorter.feed(make_record("syslog", "a", b"first line"), Position("t", 0, 0), 1_000)
    sorter.feed(make_record("syslog", "b", b"other host"), Position("t", 0, 1), 5_000)
    assert sorter.next_deadline() == 1_000 + 1_000_000_000
    sorter.flush_all()
    assert sorter.next_deadline() is None


# -- the default rules, checked against records of known structure ----------------------------
# The oracle here knows no pattern: Hypothesis builds logical records of known kinds (a single
# line of a program, a Java stack, a Python traceback, a kernel oops, raw or in syslog framing),
# each line labelled by construction with its record, interleaves their lines as real streams
# do, and the sort stage must give back exactly those records. Which lines the default pattern
# continues is never asked: a wrong rule (a sudo line merged into the sshd record before it)
# shows as a record cut in two or two records glued together.

# One line of a program, as real auth logs, messages files and relays carry them: none of them
# may join the record before it, whatever it starts with (sudo's right-aligned user name).
SINGLES: dict[str, list[str]] = {
    "sshd": [
        "Accepted password for usr1 from 10.0.0.1 port 52114 ssh2",
        "Failed password for invalid user admin from 203.0.113.5 port 4242 ssh2",
        "pam_unix(sshd:session): session opened for user usr1(uid=1001) by (uid=0)",
        "error: PAM: Authentication failure for root from 203.0.113.5",
        "Received disconnect from 203.0.113.5 port 4242:11: Bye Bye [preauth]",
        "Disconnected from authenticating user root 203.0.113.5 port 4242 [preauth]",
    ],
    "sudo": [
        "   alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/ls",
        "    root : TTY=pts/1 ; PWD=/root ; USER=root ; COMMAND=/usr/bin/systemctl restart sshd",
        "     bob : 3 incorrect password attempts ; TTY=pts/2 ; PWD=/home/bob ; USER=root ;"
        " COMMAND=/bin/su",
        "svc-backup : TTY=unknown ; PWD=/ ; USER=root ; COMMAND=/usr/bin/rsync -a /srv /backup",
        "pam_unix(sudo:session): session opened for user root(uid=0) by alice(uid=1000)",
        "pam_unix(sudo:session): session closed for user root",
    ],
    "CRON": [
        "(root) CMD (run-parts /etc/cron.hourly)",
        "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
    ],
    "systemd": [
        "Started Session 42 of User alice.",
        "session-42.scope: Deactivated successfully.",
        "Starting Daily apt upgrade and clean activities...",
        "Failed to start nginx.service - A high performance web server.",
    ],
    "kernel": [
        "[ 8815.000001] Lustre: recovery complete",
        "[   12.345678] usb 1-1: new high-speed USB device number 2 using xhci_hcd",
        "[    9.100000] EXT4-fs (sda1): mounted filesystem with ordered data mode.",
        "[ 7001.250000] nfs: server fs01 not responding, still trying",
    ],
    "slurmctld": [
        "_slurm_rpc_submit_batch_job: JobId=1234 InitPrio=4294901759 usec=1234",
        "sched: Allocate JobId=1234 NodeList=cn[01-04] #CPUs=32 Partition=batch",
        "error: Nodes cn07 not responding",
    ],
    "java": [
        "INFO [main] c.e.App - started in 3.2 seconds",
        "WARN [pool-1] c.e.Cache - 120 evicted",
    ],
    "python3": ["INFO worker: job 1234 done", "WARNING:root:disk almost full"],
    "backup": ["Error: could not open /etc/backup.conf", "write failed: No space left on device"],
}
RAW_SINGLES = [
    "2026-11-21 22:38:28,123 INFO [main] com.example.App - request ok",
    "2026-11-21 22:38:29,001 WARN [pool-2-thread-1] com.example.Cache - slow: 2300 ms",
    "2026-11-21 22:38:30,417 INFO worker: job 1235 started",
]
DMESG_SINGLES = list(SINGLES["kernel"])

JAVA_EXCEPTIONS = [
    "java.lang.IllegalStateException: boom",
    "java.io.IOException: disk quota exceeded",
    "java.lang.NullPointerException",
    "java.util.concurrent.TimeoutException: no answer in 30000 ms",
    "java.lang.OutOfMemoryError: Java heap space",
    "org.springframework.web.client.ResourceAccessException: I/O error on POST request",
    "com.example.jobs.JobFailedException: job 1234",
    "java.lang.Exception: boom",  # new Exception("boom"): the suffix is the whole last part
    "java.lang.Error: unexpected",
]
PYTHON_ENDINGS = [
    "ValueError: invalid literal for int() with base 10: 'eight'",
    "KeyError: 'cpus'",
    "sched.errors.JobError: 1234",
    "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='api', port=443)",
    "OSError: [Errno 28] No space left on device",
    "Exception: boom",  # raise Exception("boom")
]
OOPS_OPENERS = [
    "BUG: kernel NULL pointer dereference, address: 0000000000000008",
    "BUG: unable to handle page fault for address: ffffffffc0a1b2c3",
    "general protection fault, probably for non-canonical address 0xdead000000000122: 0000 [#1]",
]
OOPS_BODY = [line.split("] ", 1)[1] for line in OOPS[1:]] + ["Kernel panic - not syncing: Fatal"]


@st.composite
def java_trace(draw: st.DrawFn, tab: str) -> list[str]:
    """The lines after a Java trace's first: exception, frames, causes, "... n more"."""
    lines = [draw(st.sampled_from(JAVA_EXCEPTIONS))]
    for cause in range(draw(st.integers(0, 2)) + 1):
        if cause:
            lines.append("Caused by: " + draw(st.sampled_from(JAVA_EXCEPTIONS)))
        for n in range(draw(st.integers(1, 3))):
            lines.append(f"{tab}at com.example.App.step{n}(App.java:{40 + n})")
        if cause or draw(st.booleans()):
            lines.append(
                draw(st.sampled_from([f"{tab}... 12 more", f"{tab}... 3 common frames omitted"]))
            )
    return lines


@st.composite
def python_trace(draw: st.DrawFn) -> list[str]:
    """The lines after a Python traceback's first (the logged message): tracebacks, chained."""
    lines: list[str] = []
    for chained in range(draw(st.integers(0, 1)) + 1):
        if chained:
            lines += ["", draw(st.sampled_from([
                "During handling of the above exception, another exception occurred:",
                "The above exception was the direct cause of the following exception:",
            ])), ""]  # fmt: skip
        lines.append("Traceback (most recent call last):")
        for n in range(draw(st.integers(1, 3))):
            lines += [
                f'  File "/opt/sched/worker.py", line {80 + n}, in run',
                "    result = f(job)",
            ]
            if draw(st.booleans()):
                lines.append("             ^^^^^^")
        lines.append(draw(st.sampled_from(PYTHON_ENDINGS)))
    return lines


@st.composite
def oops(draw: st.DrawFn) -> list[str]:
    """A kernel oops, each line after its uptime: its first line, then some of the body."""
    body = draw(st.lists(st.sampled_from(range(len(OOPS_BODY))), min_size=1, max_size=8))
    return [draw(st.sampled_from(OOPS_OPENERS)), *(OOPS_BODY[i] for i in sorted(body))]


class Logical(NamedTuple):
    """A record as it was made: its lines, its program in its stream, how its lines may be cut
    apart by other lines (chunks: each a run of lines that arrives together)."""

    lines: list[str]
    program: tuple[str, str] | None  # (header host, program); None: no syslog header
    chunks: list[int]  # lengths, summing to len(lines)


HEADER_TIMES = ["Nov 21 22:38:28", "Dec  6 01:40:20", "2026-11-21T22:38:28.123456+00:00"]


@st.composite
def framed_record(draw: st.DrawFn, hosts: list[str], pri: bool) -> Logical:
    """A record in syslog framing. A trace sent line by line repeats the header on every line;
    its first two lines arrive together (so documented), later ones may have other programs'
    lines between them. A trace written with raw newlines has a header on its first line only
    and arrives whole."""
    host = draw(st.sampled_from(hosts))
    when = draw(st.sampled_from(HEADER_TIMES))
    kind = draw(
        st.sampled_from(["single", "single", "java", "python", "oops", "raw java", "raw python"])
    )

    def framed(program: str, pid: str, messages: list[str]) -> list[str]:
        prefix = ("<13>" if pri else "") + f"{when} {host} {program}{pid}: "
        return [prefix + m for m in messages]

    if kind == "single":
        program = draw(st.sampled_from(sorted(SINGLES)))
        pid = "" if program in ("sudo", "kernel") else f"[{draw(st.integers(1, 99999))}]"
        lines = framed(program, pid, [draw(st.sampled_from(SINGLES[program]))])
        return Logical(lines, (host, program), [1])
    if kind == "oops":
        start = draw(st.integers(1, 99999))
        messages = [f"[{start}.{i:06d}] {m}" for i, m in enumerate(draw(oops()))]
        lines = framed("kernel", "", messages)
        return Logical(lines, (host, "kernel"), [2] + [1] * (len(lines) - 2))
    program = "java" if "java" in kind else "python3"
    pid = f"[{draw(st.integers(1, 99999))}]"
    first = "ERROR [http-nio-8080-exec-3] c.e.JobController - submit failed"
    if program == "python3":
        first = "ERROR worker: job 1234 failed"
    if kind.startswith("raw"):  # written with raw newlines: only the first line is framed
        rest = draw(java_trace("\t")) if program == "java" else draw(python_trace())
        return Logical([*framed(program, pid, [first]), *rest], (host, program), [1 + len(rest)])
    tab = draw(st.sampled_from(["#011", "\t"]))  # rsyslog escapes the tab, or keeps it
    rest = draw(java_trace(tab)) if program == "java" else draw(python_trace())
    lines = framed(program, pid, [first, *rest])
    return Logical(lines, (host, program), [2] + [1] * (len(lines) - 2))


@st.composite
def raw_record(draw: st.DrawFn, dmesg: bool) -> Logical:
    """A record of an application log file (or dmesg output): no syslog header, so one process
    writes it, its records one after the other."""
    if dmesg:
        if draw(st.booleans()):
            lines = [draw(st.sampled_from(DMESG_SINGLES))]
        else:
            start = draw(st.integers(1, 99999))
            lines = [f"[{start}.{i:06d}] {m}" for i, m in enumerate(draw(oops()))]
    else:
        kind = draw(st.sampled_from(["single", "java", "python"]))
        if kind == "single":
            lines = [draw(st.sampled_from(RAW_SINGLES))]
        elif kind == "java":
            lines = ["2026-11-21 22:38:28,123 ERROR [main] com.example.App - request failed"]
            lines += draw(java_trace("\t"))
        else:
            lines = ["2026-11-21 22:38:28,004 ERROR worker: job 1234 failed"]
            lines += draw(python_trace())
    return Logical(lines, None, [len(lines)])


STREAMS: dict[str, tuple[str, str, dict[str, str]]] = {  # name -> (tag, host, meta)
    "messages": ("messages", "loghost", {"path": "/var/log/messages"}),
    "relay": ("messages", "relay01", {"peer": "10.0.0.7:514"}),
    "app": ("app", "app01", {"path": "/var/log/app/app.log"}),
    "dmesg": ("kern", "cn01", {"path": "/var/log/dmesg"}),
}


@st.composite
def stream_records(draw: st.DrawFn, name: str) -> list[Logical]:
    if name in ("messages", "relay"):
        hosts = ["login01"] if name == "messages" else ["cn01", "cn02", "login01"]
        return draw(st.lists(framed_record(hosts, pri=name == "relay"), min_size=1, max_size=8))
    return draw(st.lists(raw_record(dmesg=name == "dmesg"), min_size=1, max_size=5))


def feed_interleaved(
    streams: dict[str, list[Logical]], choose: Callable[[list[tuple[str, int]]], int]
) -> tuple[list[Ready], dict[int, tuple[str, Logical]]]:
    """Feed the streams' records to a sorter, their chunks interleaved as ``choose`` picks
    among those that may come next: a record's chunks in order, and a record only once every
    earlier record of its program in its stream is complete (a program writes one record at a
    time; without a header, the stream is one writer). Returns what the sorter emitted (fed,
    then flushed) and each record by the offset of its first line."""
    sent = {name: [0] * len(records) for name, records in streams.items()}
    firsts: dict[int, tuple[str, Logical]] = {}
    sorter = make()
    got: list[Ready] = []
    offset = 0
    while True:
        eligible = [
            (name, i)
            for name, records in streams.items()
            for i, record in enumerate(records)
            if sent[name][i] < len(record.chunks)
            and (
                sent[name][i] > 0
                or all(
                    sent[name][j] == len(earlier.chunks)
                    for j, earlier in enumerate(records[:i])
                    if earlier.program == record.program
                )
            )
        ]
        if not eligible:
            break
        name, i = eligible[choose(eligible)]
        record, k = streams[name][i], sent[name][i]
        sent[name][i] += 1
        if k == 0:
            firsts[offset] = (name, record)
        begin = sum(record.chunks[:k])
        tag, host, meta = STREAMS[name]
        for line in record.lines[begin : begin + record.chunks[k]]:
            fed = make_record(tag, host, line, dict(meta), T0 + offset)
            got += sorter.feed(fed, Position("logs.raw", 0, offset), T0 + offset)
            offset += 1
    return got + sorter.flush_all(), firsts


def check_default_rules(
    streams: dict[str, list[Logical]], choose: Callable[[list[tuple[str, int]]], int]
) -> None:
    got, firsts = feed_interleaved(streams, choose)
    expected = [
        (offset, name, "\n".join(record.lines), len(record.lines))
        for offset, (name, record) in sorted(firsts.items())
    ]
    stream_names = {
        (tag, host, next(iter(meta.values()))): name for name, (tag, host, meta) in STREAMS.items()
    }
    emitted = [
        (
            position.offset,
            stream_names[(r.source, r.host, str(r.meta.get("path") or r.meta.get("peer")))],
            r.line,
            r.meta.get("lines", 1),
        )
        for r, position, _ in got
    ]
    assert sorted(emitted) == expected
    assert {workshop for _, _, workshop in got} == {"syslog"}
    assert all(r.received == T0 + position.offset for r, position, _ in got)
    # and a program's records come out in the order they began
    by_program: dict[tuple[str, Any], list[int]] = {}
    for offset, name, _, _ in emitted:
        by_program.setdefault((name, firsts[offset][1].program), []).append(offset)
    assert all(offsets == sorted(offsets) for offsets in by_program.values())


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_the_default_rules_give_back_the_records_they_were_made_of(data: st.DataObject) -> None:
    names = data.draw(st.lists(st.sampled_from(sorted(STREAMS)), min_size=1, unique=True))
    streams = {name: data.draw(stream_records(name), label=name) for name in names}
    check_default_rules(streams, lambda options: data.draw(st.integers(0, len(options) - 1)))


def _framed(host: str, program: str, *messages: str) -> list[str]:
    return [f"Dec  6 01:40:20 {host} {program}: {m}" for m in messages]


def test_a_real_auth_log_comes_out_record_by_record() -> None:
    """The first bug a new user hit: the sudo line (indented by sudo's own format) merged into
    the sshd record before it. Here with a Java trace sent line by line in the same file, which
    must keep merging across the other programs' lines."""
    java = [
        "ERROR [main] c.e.App - request failed",
        "java.lang.IllegalStateException: boom",
        "#011at com.example.App.run(App.java:42)",
        "#011at com.example.App.main(App.java:12)",
    ]
    records = [
        Logical(_framed("login01", "sshd[811]", SINGLES["sshd"][0]), ("login01", "sshd"), [1]),
        Logical(_framed("login01", "sudo", SINGLES["sudo"][0]), ("login01", "sudo"), [1]),
        Logical(_framed("login01", "sudo", SINGLES["sudo"][1]), ("login01", "sudo"), [1]),
        Logical(_framed("login01", "java[311]", *java), ("login01", "java"), [2, 1, 1]),
        Logical(_framed("login01", "CRON[12]", SINGLES["CRON"][0]), ("login01", "CRON"), [1]),
        Logical(_framed("login01", "sudo", SINGLES["sudo"][4]), ("login01", "sudo"), [1]),
    ]
    check_default_rules({"messages": records}, lambda options: 0)  # one record after another
    # the trace's first two lines, then each later line after another program's line
    script = iter([3, 0, 3, 1, 3, 2, 4, 5])
    check_default_rules(
        {"messages": records}, lambda options: options.index(("messages", next(script)))
    )
