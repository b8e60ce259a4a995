"""Every path that writes a dead letter, through a real factory worker on the embedded bus.

Why: the factory promises that whatever it cannot turn into output goes to ``logs.deadletter``
with the reason and the bytes as they came, never dropped silently and never twice. Before this
file only invalid UTF-8 and an unknown tag were tested end to end, and no test looked at a
letter's ``stage``, ``position``, ``host`` or ``received``. Here one worker reads one batch of
input that takes every path (intake garbage; an unknown tag; the decode errors of the kv,
slurm, json and syslog workshops, of a merged multi-line record and of bytes that are not UTF-8;
a workshop, the filter and the process stage raising; an event type that is not configured)
and each letter is compared whole with the letter written out by hand here. Then every input
position is accounted for exactly once: in ``logs.parsed``, in a letter, or inside a merged
record; and no dead-lettered record made an event.

The exceptions are forced in-process with ``monkeypatch`` on the workshop, filter and process
classes (a marker in the line picks the record); src has no test hooks.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from tests.helpers.bus import read_all
from tests.helpers.worker import bus_of

from logfactory.config import Config, parse_config
from logfactory.event import BUILTIN_TYPES, topic_for_type
from logfactory.factory.filter import FilterStage
from logfactory.factory.model import Decoded, DecodedParts, Draft
from logfactory.factory.process.rules import ProcessStage
from logfactory.factory.worker import FactoryWorker
from logfactory.factory.workshops.kv import KvWorkshop
from logfactory.factory.workshops.syslog import SyslogWorkshop
from logfactory.record import Record, encode_record
from logfactory.stats import StatsRegistry
from logfactory.topics import DEADLETTER, PARSED, RAW

CONFIG = """
node: {{name: dl, data_dir: {data}, timezone: UTC}}
bus: {{type: local, partitions: 2}}
workshops:
  syslog: {{format: syslog, multiline: {{timeout: 1s}}}}
  slurm: {{format: slurm}}
  sce:
    format: kv
    separator: "|"
    fields: [time, host, user, addr, op, params]
    time_field: time
  apps: {{format: json}}
  appsml: {{format: json, multiline: {{start: '^\\{{', timeout: 1s}}}}
factory: {{batch_size: 500, new_patterns: false}}
event_types:
  - {{name: SSH_LOGIN}}
mappings:
  - name: installs
    when: {{workshop: apps, fields: {{action: install}}}}
    type: APP_STATUS
    body: {{app: "{{app}}"}}
  - name: ssh-login
    when: {{workshop: syslog, program: sshd, message: 'Accepted \\S+ for (?P<user>\\S+)'}}
    type: SSH_LOGIN
    body: {{user: "{{user}}"}}
alerts:
  - name: root-login
    when: {{workshop: syslog, program: sshd, message: 'Accepted \\S+ for root '}}
    subtype: ROOT_LOGIN
    reason: root logged in
"""

RECEIVED_TEXT = "2026-12-06T05:04:03.123456Z"
RECEIVED = (
    datetime(2026, 12, 6, 5, 4, 3, 123456, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)
) // timedelta(microseconds=1) * 1000 + 789  # the letter keeps microseconds, like envelopes


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _record(source: str, host: str, data: bytes, meta: dict[str, Any] | None = None) -> bytes:
    """A record on ``logs.raw`` as a collector writes it (``raw`` only for invalid UTF-8)."""
    try:
        line, raw = data.decode("utf-8"), None
    except UnicodeDecodeError:
        line, raw = data.decode("utf-8", errors="replace"), data
    return encode_record(Record(source, host, RECEIVED, line, meta or {}, raw))


def _from(source: str, host: str, line: str, **more: str) -> dict[str, Any]:
    """The record fields every letter of a record carries (beside reason, stage, position)."""
    return {"received": RECEIVED_TEXT, "source": source, "host": host, "line": line, **more}


@dataclass(frozen=True)
class Case:
    """Input messages (the first one's position is the letter's) and the letter they make."""

    name: str
    values: tuple[bytes, ...]
    letter: dict[str, Any]  # every field but ``position``
    reason_prefix: bool = False  # the reason's tail is msgspec's own wording


TRACE = (
    b"Dec  7 09:00:04 web04 python3[88]: Traceback (most recent call last):",
    b'Dec  7 09:00:04 web04 python3[88]:   File "/srv/caf\xe9.py", line 9, in main',
    b"Dec  7 09:00:04 web04 python3[88]: KeyError: 'x'",
)
TRACE_TEXT = "\n".join(line.decode("utf-8", errors="replace") for line in TRACE)
JSON_CUT = (b'{"message": "installed q",', b'  "app": "q",', b'  "action": ')
# multi-line records: every line after the first ends up inside the first line's record
ML_JSON_CUT = tuple(_record("appsml", "h-ml", line) for line in JSON_CUT)
ML_TRACE = tuple(
    _record("syslog", "h-trace", line, {"path": "/var/log/messages"}) for line in TRACE
)
ML_GOOD = (
    _record("appsml", "h-ok5", b'{"message": "installed y",'),
    _record("appsml", "h-ok5", b'  "app": "y"}'),
)
NOT_JSON = b"\x00\x01 not a record at all \xff\xfe"
ROOT_LOGIN = (
    "<38>Dec  7 09:00:05 web02 sshd[4242]: Accepted publickey for root from 10.0.0.7 port 50022"
)

CASES = [
    Case(
        "intake: bytes that are not JSON",
        (NOT_JSON,),
        {
            "reason": "not a logfactory record: JSON is malformed",
            "stage": "intake",
            "original_b64": _b64(NOT_JSON),
        },
        reason_prefix=True,
    ),
    Case(
        "intake: JSON that is not a record",
        (b'{"line": "no source, host or received"}',),
        {
            "reason": "not a logfactory record: Object missing required field `source`",
            "stage": "intake",
            "original_b64": _b64(b'{"line": "no source, host or received"}'),
        },
    ),
    Case(
        "intake: an empty message",
        (b"",),
        {
            "reason": "not a logfactory record: Input data was truncated",
            "stage": "intake",
            "original_b64": "",
        },
    ),
    Case(
        "sort: unknown source tag",
        (_record("nosuch", "h-tag", b"who decodes me?"),),
        {
            "reason": "unknown source tag 'nosuch'; add a route under factory.routes",
            "stage": "sort",
            **_from("nosuch", "h-tag", "who decodes me?"),
        },
    ),
    Case(
        "sort: unknown source tag, bytes not UTF-8",
        (_record("nosuch", "h-tag8", b"caf\xe9 \xff"),),
        {
            "reason": "unknown source tag 'nosuch'; add a route under factory.routes",
            "stage": "sort",
            **_from("nosuch", "h-tag8", "caf\ufffd \ufffd", original_b64=_b64(b"caf\xe9 \xff")),
        },
    ),
    Case(
        "decode: kv, too few columns",
        (_record("sce", "h-kv1", b"2026-11-22 00:10:42|login01|usr1"),),
        {
            "reason": "expected 6 columns separated by '|', found 3",
            "stage": "decode",
            **_from("sce", "h-kv1", "2026-11-22 00:10:42|login01|usr1"),
        },
    ),
    Case(
        "decode: kv, no time",
        (_record("sce", "h-kv2", b"|login01|usr1|10.0.0.1|QUERY_JOB|a=1"),),
        {
            "reason": "no time in column 'time'",
            "stage": "decode",
            **_from("sce", "h-kv2", "|login01|usr1|10.0.0.1|QUERY_JOB|a=1"),
        },
    ),
    Case(
        "decode: kv, bad time",
        (_record("sce", "h-kv3", b"yesterday|login01|usr1|10.0.0.1|QUERY_JOB|a=1"),),
        {
            "reason": "bad time 'yesterday' in column 'time': "
            "expected ISO 8601 (YYYY-MM-DD HH:MM:SS[.ffffff])",
            "stage": "decode",
            **_from("sce", "h-kv3", "yesterday|login01|usr1|10.0.0.1|QUERY_JOB|a=1"),
        },
    ),
    Case(
        "decode: slurm, empty line",
        (_record("slurm", "h-slurm", b"   "),),
        {"reason": "empty line", "stage": "decode", **_from("slurm", "h-slurm", "   ")},
    ),
    Case(
        "decode: json, truncated",
        (_record("apps", "h-json1", b'{"message": "installed x", "app": '),),
        {
            "reason": "not valid JSON: Input data was truncated",
            "stage": "decode",
            **_from("apps", "h-json1", '{"message": "installed x", "app": '),
        },
    ),
    Case(
        "decode: json, not an object",
        (_record("apps", "h-json2", b'["install", "x"]'),),
        {
            "reason": "not a JSON object",
            "stage": "decode",
            **_from("apps", "h-json2", '["install", "x"]'),
        },
    ),
    Case(
        "decode: json, bytes not UTF-8",
        (_record("apps", "h-json3", b'{"message": "caf\xe9'),),
        {
            "reason": "not valid JSON: Input data was truncated",
            "stage": "decode",
            **_from(
                "apps",
                "h-json3",
                '{"message": "caf\ufffd',
                original_b64=_b64(b'{"message": "caf\xe9'),
            ),
        },
    ),
    Case(
        "decode: syslog, empty line",
        (_record("syslog", "h-sys1", b""),),
        {"reason": "empty line", "stage": "decode", **_from("syslog", "h-sys1", "")},
    ),
    Case(
        "decode: syslog, binary",
        (_record("syslog", "h-sys2", b"\x01\x02binary\x7f junk"),),
        {
            "reason": "not a syslog line: '\\x01\\x02binary\\x7f junk'",
            "stage": "decode",
            **_from("syslog", "h-sys2", "\x01\x02binary\x7f junk"),
        },
    ),
    Case(
        "decode: json, a multi-line record cut short",
        ML_JSON_CUT,
        {
            "reason": "not valid JSON: Input data was truncated",
            "stage": "decode",
            **_from("appsml", "h-ml", "\n".join(line.decode() for line in JSON_CUT)),
        },
    ),
    Case(
        "decode: a workshop raising",
        (_record("sce", "h-kv4", b"2026-11-22 00:10:42|login01|usr1|10.0.0.1|EXPLODE|a=1"),),
        {
            "reason": "workshop sce failed: RuntimeError('kv workshop bug')",
            "stage": "decode",
            **_from("sce", "h-kv4", "2026-11-22 00:10:42|login01|usr1|10.0.0.1|EXPLODE|a=1"),
        },
    ),
    Case(
        "decode: a workshop raising on a multi-line record, bytes not UTF-8",
        ML_TRACE,
        {
            "reason": "workshop syslog failed: RuntimeError('syslog workshop bug')",
            "stage": "decode",
            **_from("syslog", "h-trace", TRACE_TEXT, original_b64=_b64(b"\n".join(TRACE))),
        },
    ),
    Case(
        "filter: the filter raising",
        (
            _record(
                "apps", "h-filter", b'{"message": "FILTERBOOM", "app": "f", "action": "install"}'
            ),
        ),
        {
            "reason": "filter failed: ValueError('filter bug')",
            "stage": "filter",
            **_from(
                "apps", "h-filter", '{"message": "FILTERBOOM", "app": "f", "action": "install"}'
            ),
        },
    ),
    Case(
        "process: a rule raising",
        (
            _record(
                "apps", "h-proc", b'{"message": "PROCESSBOOM", "app": "p", "action": "install"}'
            ),
        ),
        {
            "reason": "process failed: LookupError('process bug')",
            "stage": "process",
            **_from(
                "apps", "h-proc", '{"message": "PROCESSBOOM", "app": "p", "action": "install"}'
            ),
        },
    ),
    Case(
        "package: an event type not configured",
        (_record("syslog", "relay01", ROOT_LOGIN.encode()),),
        {
            "reason": "event type 'SSH_LOGIN' is not configured; add it under event_types",
            "stage": "package",
            **_from("syslog", "relay01", ROOT_LOGIN),
        },
    ),
]

# Records that decode: parsed once each; APP_STATUS and the root login's ALERT are the only events.
GOOD = [
    _record("sce", "h-ok1", b"2026-11-22 00:10:42|login01|usr1|159.226.3.7|QUERY_JOB|cpus=8"),
    _record("slurm", "h-ok2", b"[2026-11-22T00:10:42.000] _job_complete: JobId=42 done"),
    _record("apps", "h-ok3", b'{"message": "installed z", "app": "z", "action": "install"}'),
    _record("syslog", "h-ok4", b"<13>Dec  7 09:00:00 web03 app: hello"),
    *ML_GOOD,
]
PACKAGE_CASE = CASES[-1]
# input positions that end up inside a record opened earlier (not parsed or lettered alone)
JOINED = {*ML_JSON_CUT[1:], *ML_TRACE[1:], *ML_GOOD[1:]}


def _boom_kv(original: Any) -> Any:
    def decode(self: KvWorkshop, record: Record) -> DecodedParts:
        if "EXPLODE" in record.line:
            raise RuntimeError("kv workshop bug")
        return original(self, record)  # type: ignore[no-any-return]

    return decode


def _boom_syslog(original: Any) -> Any:
    def decode(self: SyslogWorkshop, record: Record) -> DecodedParts:
        if "Traceback" in record.line:
            raise RuntimeError("syslog workshop bug")
        return original(self, record)  # type: ignore[no-any-return]

    return decode


def _boom_filter(original: Any) -> Any:
    def apply(self: FilterStage, decoded: Decoded) -> list[Draft]:
        if decoded.message == "FILTERBOOM":
            raise ValueError("filter bug")
        return original(self, decoded)  # type: ignore[no-any-return]

    return apply


def _boom_process(original: Any) -> Any:
    def feed(self: ProcessStage, decoded: Decoded) -> list[Draft]:
        if decoded.message == "PROCESSBOOM":
            raise LookupError("process bug")
        return original(self, decoded)  # type: ignore[no-any-return]

    return feed


@dataclass
class Run:
    config: Config
    positions: dict[bytes, str]  # input value -> its position on logs.raw
    letters: list[dict[str, Any]]
    parsed: list[dict[str, Any]]
    events: dict[str, list[dict[str, Any]]]  # by topic
    counters: dict[str, dict[str, int]]


def _read(config: Config, topic: str) -> list[tuple[str, bytes]]:
    """(position, value) of every message on ``topic``."""
    bus = bus_of(config)
    try:
        return [(f"{m.topic}/{m.partition}/{m.offset}", m.value) for m in read_all(bus, topic)]
    finally:
        bus.close()


def _run(config: Config, values: list[bytes], timeout: float = 120.0) -> StatsRegistry:
    """Put ``values`` on ``logs.raw`` and let one worker process all of them."""
    bus = bus_of(config)
    registry = StatsRegistry("test")
    try:
        producer = bus.producer()
        for value in values:
            producer.produce(RAW, value, b"k")  # one partition: the multi-line cases in order
        producer.flush()
        producer.close()
        worker = FactoryWorker(config, bus, registry)
        try:
            end = time.monotonic() + timeout
            while True:
                batch = worker.consumer.poll(5000, timeout=0.1)
                worker.process_batch(batch)  # an empty batch still emits multi-line records due
                if not batch and not any(p.sorter.pending() for p in worker.parts.values()):
                    return registry
                assert time.monotonic() < end, "the worker did not finish its input"
        finally:
            worker.close()
    finally:
        bus.close()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    tmp = tmp_path_factory.mktemp("deadletters")
    config = parse_config(CONFIG.format(data=tmp / "d"), "dl.yaml")
    # an event type a mapping names but the worker does not have: only a config built in code
    # (the file check refuses it) reaches this; the package stage must still say so
    config = msgspec.structs.replace(config, event_types=[])
    values = [v for case in CASES for v in case.values] + GOOD
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(KvWorkshop, "decode", _boom_kv(KvWorkshop.decode))
        mp.setattr(SyslogWorkshop, "decode", _boom_syslog(SyslogWorkshop.decode))
        mp.setattr(FilterStage, "apply", _boom_filter(FilterStage.apply))
        mp.setattr(ProcessStage, "feed", _boom_process(ProcessStage.feed))
        registry = _run(config, values)
    raw = _read(config, RAW)
    positions = {value: position for position, value in raw}
    assert len(positions) == len(raw) == len(values)  # every input distinct, each once on the bus
    events = {
        topic_for_type(t): [json.loads(v) for _, v in _read(config, topic_for_type(t))]
        for t in BUILTIN_TYPES
    }
    return Run(
        config,
        positions,
        [json.loads(v) for _, v in _read(config, DEADLETTER)],
        [json.loads(v) for _, v in _read(config, PARSED)],
        events,
        registry.snapshot()["counters"],
    )


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_path_writes_one_letter_with_every_field(run: Run, case: Case) -> None:
    position = run.positions[case.values[0]]
    mine = [letter for letter in run.letters if letter["position"] == position]
    assert len(mine) == 1, mine  # one letter, never two
    [letter] = mine
    expected = {**case.letter, "position": position}
    if case.reason_prefix:
        assert letter["reason"].startswith(expected["reason"]), letter
        expected["reason"] = letter["reason"]
    assert letter == expected  # every field, and no other


def test_every_input_is_accounted_for_exactly_once(run: Run) -> None:
    """A position is in a letter, or in logs.parsed, or inside an earlier record: never two."""
    lettered = [letter["position"] for letter in run.letters]
    parsed = [p["position"] for p in run.parsed]
    assert len(set(lettered)) == len(lettered) == len(CASES)
    assert len(set(parsed)) == len(parsed)
    package = run.positions[PACKAGE_CASE.values[0]]
    # the record whose event type is not configured was decoded: in logs.parsed and a letter
    assert set(lettered) & set(parsed) == {package}
    joined = {run.positions[v] for v in JOINED}
    assert not joined & (set(lettered) | set(parsed))
    assert set(lettered) | set(parsed) | joined == set(run.positions.values())
    assert set(lettered) == {run.positions[case.values[0]] for case in CASES}
    good = {run.positions[v] for v in GOOD if v not in JOINED}
    assert set(parsed) == good | {package}
    [merged] = [p for p in run.parsed if p["host"] == "h-ok5"]
    assert merged["message"] == "installed y"
    assert merged["fields"]["app"] == "y"


def test_no_letter_is_also_an_event(run: Run) -> None:
    """Only the good install and the root login make events; the failed installs make none."""
    made = {topic: events for topic, events in run.events.items() if events}
    assert set(made) == {"events.APP_STATUS", "events.ALERT"}
    [install] = made["events.APP_STATUS"]
    assert install["body"]["app"] == "z"
    [alert] = made["events.ALERT"]
    assert (alert["header"]["subtype"], alert["header"]["host"]) == ("ROOT_LOGIN", "web02")
    [login] = [p for p in run.parsed if p["position"] == run.positions[PACKAGE_CASE.values[0]]]
    assert (login["host"], login["fields"]["program"]) == ("web02", "sshd")


def test_stage_counters_match_the_letters(run: Run) -> None:
    """Each letter is counted once, at the stage that wrote it (the node's metrics say so)."""
    by_stage: dict[str, int] = {}
    for letter in run.letters:
        by_stage[letter["stage"]] = by_stage.get(letter["stage"], 0) + 1
    assert by_stage == {
        "intake": 3,
        "sort": 2,
        "decode": 12,
        "filter": 1,
        "process": 1,
        "package": 1,
    }
    c = run.counters
    assert c["deadletter"]["sent"] == len(run.letters) == len(CASES)
    assert c["stage:intake"]["dropped"] == 3
    assert c["stage:sort"]["dropped"] == 2
    assert (c["stage:decode"]["dropped"], c["stage:decode"]["errors"]) == (10, 2)
    assert c["stage:filter"]["errors"] == 1
    assert c["stage:process"]["errors"] == 1
    assert c["stage:package"]["dropped"] == 1
