"""json workshop: objects only, message field, time keys and epoch units, delegation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from logfactory.config import parse_config
from logfactory.factory.model import DecodedParts, DecodeError
from logfactory.factory.workshops import build_workshops
from logfactory.record import make_record

WORKSHOPS = build_workshops(
    parse_config(
        "node: {timezone: America/New_York}\n"
        "workshops: {app: {format: json}, audit: {format: json, message_field: msg}}"
    )
)
RECEIVED = 1_795_000_000_000_000_000
EXPECTED = int(datetime(2026, 11, 21, 22, 38, 28, tzinfo=UTC).timestamp()) * 10**9


def decode(line: str | bytes, workshop: str = "app") -> DecodedParts:
    return WORKSHOPS[workshop].decode(make_record("app", "collector", line, received=RECEIVED))


def test_structured_logger_line() -> None:
    parts = decode('{"time":"2026-11-21T22:38:28.250Z","level":"error","message":"disk full",'
                   '"host":"nas01","program":"zfsd","pool":{"name":"tank","free":0}}')  # fmt: skip
    assert parts.workshop == "app"
    assert parts.message == "disk full"
    assert parts.time_ns == EXPECTED + 250_000_000
    assert parts.fields == {
        "time": "2026-11-21T22:38:28.250Z", "level": "error", "host": "nas01",
        "program": "zfsd", "pool": {"name": "tank", "free": 0},
    }  # fmt: skip


@pytest.mark.parametrize(
    "stamp",
    ['"@timestamp": "2026-11-21T22:38:28+00:00"', '"ts": 1795300708', '"ts": 1795300708000',
     '"timestamp": 1795300708000000', '"ts": 1795300708000000000', '"ts": 1795300708.0',
     '"time": "2026-11-21 17:38:28"'],
)  # fmt: skip
def test_time_keys_and_epoch_units(stamp: str) -> None:
    assert decode("{" + stamp + ', "message": "x"}').time_ns == EXPECTED


def test_unusable_times_fall_back_to_receive_time() -> None:
    assert decode('{"time": "soon", "ts": true, "message": "x"}').time_ns == RECEIVED
    assert decode('{"ts": -5}').time_ns == RECEIVED
    assert decode('{"time": "not a time", "ts": 1795300708}').time_ns == EXPECTED


def test_message_absent_is_compact_json_and_host_defaults() -> None:
    parts = decode('{ "event" : "login",  "user": "usr1" }')
    assert parts.message == '{"event":"login","user":"usr1"}'
    assert parts.fields == {"event": "login", "user": "usr1", "host": "collector"}


def test_custom_message_field_and_non_string_message() -> None:
    assert decode('{"msg": "granted", "message": "kept"}', "audit").fields["message"] == "kept"
    assert decode('{"msg": {"a": [1, 2]}}', "audit").message == '{"a":[1,2]}'


@pytest.mark.parametrize("line", ["[1, 2]", '"text"', "42", "null"])
def test_non_objects_are_errors(line: str) -> None:
    with pytest.raises(DecodeError, match="not a JSON object"):
        decode(line)


@pytest.mark.parametrize("line", ["", "{", "{'a': 1}", "Nov 21 22:38:28 host x: y"])
def test_malformed_json(line: str) -> None:
    with pytest.raises(DecodeError, match="not valid JSON"):
        decode(line)


def test_delegated_json_merges_over_syslog_fields() -> None:
    parts = WORKSHOPS["app"].decode_message(
        '{"message": "ok", "pid": 7}', {"host": "h", "program": "p", "pid": 1}, 5
    )
    assert parts == DecodedParts("app", 5, "ok", {"host": "h", "program": "p", "pid": 7})


def test_invalid_utf8_inside_a_string_is_replaced_and_parsed() -> None:
    assert decode(b'{"message":"\xe9t\xe9"}').message == "\ufffdt\ufffd"
