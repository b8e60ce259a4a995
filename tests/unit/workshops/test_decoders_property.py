"""Property: whatever arrives, every workshop returns DecodedParts or raises DecodeError.

Inputs are arbitrary bytes (through ``make_record``, so invalid UTF-8 is covered), arbitrary
text, and text assembled from fragments of the real formats, which reaches the deeper parser
branches far more often than uniform noise does.
"""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from logfactory.config import parse_config
from logfactory.factory.model import DecodedParts, DecodeError
from logfactory.factory.workshops import build_workshops
from logfactory.factory.workshops.timeparse import MAX_NS, MIN_NS
from logfactory.record import make_record

CONFIG = """
node: {timezone: Europe/Berlin}
workshops:
  syslog: {format: syslog, delegate: {slurmctld: slurm, mw: sce, japp: json, ksys: plain}}
  plain: {format: syslog, timezone: Asia/Kolkata}
  slurm: {format: slurm}
  sce: {format: kv, fields: [time, host, user, addr, op, params], time_field: time}
  custom:
    format: kv
    separator: ";"
    fields: [when, params]
    pair_separator: ","
    kv_separator: ":"
    time_field: when
    time_format: "%d/%m/%Y %H:%M:%S %z"
  loose: {format: kv, fields: [a, params]}
  json: {format: json}
"""
WORKSHOPS = build_workshops(parse_config(CONFIG))
NAMES = sorted(WORKSHOPS)

FRAGMENTS = [
    "<13>",
    "<191>",
    "<192>",
    "<0>",
    "<999>",
    "<",
    ">",
    "1 ",
    "Nov 21 22:38:28 ",
    "Feb 29 ",
    "Dec 31 23:59:60.999 ",
    "Jan  1 00:00:00 ",
    "2026-11-21T22:38:28.123456+01:00 ",
    "9999-12-31T23:59:59-23:59 ",
    "0000-00-00T00:00:00Z ",
    "- ",
    "[",
    "]",
    '[a b="c"]',
    '[x@1 k="v\\"',
    "\\",
    '"',
    "=",
    "|",
    ";",
    ",",
    ":",
    " ",
    "\t",
    "\n",
    "\ufeff",
    "host ",
    "sshd[12]: ",
    "kernel: ",
    "[  12.5] ",
    "slurmctld: ",
    "mw: ",
    "japp: ",
    "ksys: ",
    "prog[x]: ",
    "JobId=",
    "1234",
    "(1001)",
    "UserId=u(1)",
    "ExitCode=1:9",
    "JobState=FAILED ",
    "WEXITSTATUS ",
    "WTERMSIG ",
    "_job_complete: ",
    "REQUEST_KILL_JOB ",
    "uid ",
    "Started ",
    " in p on n",
    "Time limit exhausted for ",
    "Requeuing ",
    "#CPUs=",
    "sched: Allocate ",
    "[2026-11-21T22:38:28.123] ",
    "{",
    "}",
    '"message"',
    '"time"',
    '"ts"',
    "1e400",
    "-1",
    "12345678901234567890123",
    "null",
    "true",
    "[]",
    "{}",
    "\x00",
    "\x7f",
    "é",
    "\U0001f600",
    "21/11/2026 22:38:28 +0100",
    "2026-11-21 22:38:28",
    "a=b",
    'q="x y"',
    "k:v",
]
formatish = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=5), max_size=14).map("".join)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["time", "ts", "message", "x", "@timestamp"]), inner)
    ),
    max_leaves=8,
)


def check(parts: Any, workshop: str) -> None:
    assert isinstance(parts, DecodedParts)
    assert isinstance(parts.time_ns, int)
    assert isinstance(parts.message, str)
    assert isinstance(parts.fields, dict)
    assert parts.workshop in WORKSHOPS
    # a time outside the sane range would crash the packaging of the envelope
    assert MIN_NS <= parts.time_ns < MAX_NS or parts.time_ns == RECEIVED
    del workshop


RECEIVED = 1_795_300_000_000_000_000


def run_all(data: bytes | str) -> None:
    for name in NAMES:
        record = make_record(name, "h", data, received=RECEIVED)
        try:
            parts = WORKSHOPS[name].decode(record)
        except DecodeError as exc:
            if not exc.reason:
                raise AssertionError(f"{name}: a DecodeError without a reason") from exc
            continue
        check(parts, name)
        if record.raw is not None:  # not UTF-8: decoded exactly as its replacement text is
            text = make_record(name, "h", record.line, received=RECEIVED)
            assert WORKSHOPS[name].decode(text) == parts


def run_messages(text: str) -> None:
    for name in NAMES:
        try:
            parts = WORKSHOPS[name].decode_message(text, {"host": "h", "program": "p"}, RECEIVED)
        except DecodeError as exc:
            if not exc.reason:
                raise AssertionError(f"{name}: a DecodeError without a reason") from exc
            continue
        check(parts, name)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes(data: bytes) -> None:
    run_all(data)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text(text: str) -> None:
    run_all(text)
    run_messages(text)


@settings(max_examples=600, deadline=None)
@given(formatish)
def test_format_like_text(text: str) -> None:
    run_all(text)
    run_messages(text)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_json_documents(value: Any) -> None:
    try:
        text = msgspec.json.encode(value).decode()
    except (OverflowError, ValueError, msgspec.EncodeError):
        return
    run_all(text)
