"""StoredDoc from a parsed record and from an event: ids, times, severities, searchable words."""

from __future__ import annotations

import msgspec
import pytest

from logfactory.store.document import doc_to_json, from_event, from_parsed, parse_time


def _parsed(**over: object) -> bytes:
    record: dict[str, object] = {
        "time": "2026-12-06T10:00:00.123456789Z",
        "received": "2026-12-06T10:00:01.5Z",
        "source": "syslog",
        "host": "cn01",
        "workshop": "syslog",
        "message": "Failed password for alice",
        "fields": {"level": "ERR", "program": "sshd"},
        "pattern": "p-1",
        "status": "alert",
        "position": "logs.raw/2/17",
    }
    record.update(over)
    return msgspec.json.encode(record)


def test_a_parsed_record_keeps_its_raw_position_as_id_and_every_digit_of_its_time() -> None:
    doc = from_parsed(_parsed(), "logs.parsed/1/5")
    assert doc.id == "logs.raw/2/17"
    assert doc.origin == "logs.parsed/1/5"
    assert doc.kind == "log"
    assert doc.time == 1_796_551_200_123_456_789
    assert doc.received == 1_796_551_201_500_000_000
    assert doc.severity == "error"  # syslog's err, the long way
    assert (doc.pattern, doc.status) == ("p-1", "alert")


def test_a_parsed_record_without_a_position_is_known_by_where_the_store_read_it() -> None:
    doc = from_parsed(_parsed(position=None, fields={}), "logs.parsed/1/5")
    assert doc.id == "logs.parsed/1/5"
    assert doc.severity == ""


def test_a_value_that_is_not_a_parsed_record_is_refused() -> None:
    with pytest.raises((msgspec.DecodeError, msgspec.ValidationError, ValueError)):
        from_parsed(b'{"time": 1}', "logs.parsed/0/0")


def test_an_event_is_searchable_by_its_reason_and_body_and_keeps_body_over_params() -> None:
    envelope = {
        "header": {
            "id": "e-1",
            "time": "2026-12-06T10:00:00Z",
            "type": "ALERT",
            "subtype": "PASSWORD_ATTACK",
            "severity": "high",
            "host": "login01",
            "reason": "5 failed passwords",
        },
        "body": {"account": "root", "addrs": ["10.0.0.1", "10.0.0.2"], "n": None},
        "params": {"account": "ignored", "window_s": 60},
    }
    doc = from_event(msgspec.json.encode(envelope), "events.ALERT/0/3")
    assert doc.id == "e-1"
    assert (doc.kind, doc.type, doc.subtype, doc.severity) == (
        "event",
        "ALERT",
        "PASSWORD_ATTACK",
        "high",
    )
    assert doc.received == doc.time  # an envelope without received: its time
    assert doc.message == '5 failed passwords account=root addrs=["10.0.0.1","10.0.0.2"]'
    assert doc.fields == {"account": "root", "addrs": ["10.0.0.1", "10.0.0.2"], "n": None,
                          "window_s": 60}  # fmt: skip


def test_times_parse_with_offsets_and_without_fractions() -> None:
    assert parse_time("2026-12-06T11:00:00+01:00") == parse_time("2026-12-06T10:00:00Z")
    assert parse_time("2026-12-06T10:00:00.5Z") - parse_time("2026-12-06T10:00:00Z") == 500_000_000


def test_json_shows_times_as_text_and_only_the_chosen_columns() -> None:
    doc = from_parsed(_parsed(), "logs.parsed/1/5")
    shown = doc_to_json(doc, ("host", "time"))
    assert shown == {"id": "logs.raw/2/17", "host": "cn01", "time": "2026-12-06T10:00:00.123456Z"}
    assert "workshop" in doc_to_json(doc)
