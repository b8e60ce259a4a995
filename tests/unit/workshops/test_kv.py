"""kv workshop: delimited middleware lines, params pairs with quoting, strict time column."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logfactory.config import parse_config
from logfactory.factory.model import DecodedParts, DecodeError
from logfactory.factory.workshops import build_workshops
from logfactory.factory.workshops.kv import convert_value, parse_pairs
from logfactory.record import make_record

CONFIG = """
node: {timezone: Asia/Shanghai}
workshops:
  sce: {format: kv, fields: [time, host, user, addr, op, params], time_field: time}
  custom:
    format: kv
    separator: ";"
    fields: [when, op, params]
    pair_separator: ","
    kv_separator: ":"
    time_field: when
    time_format: "%d/%m/%Y %H:%M:%S"
    timezone: UTC
  notime: {format: kv, fields: [user, op]}
"""
SHANGHAI = ZoneInfo("Asia/Shanghai")
WORKSHOPS = build_workshops(parse_config(CONFIG))
RECEIVED = 1_795_000_000_000_000_000


def ns(dt: datetime) -> int:
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


def decode(line: str | bytes, workshop: str = "sce") -> DecodedParts:
    return WORKSHOPS[workshop].decode(make_record("sce", "collector", line, received=RECEIVED))


def test_sce_line() -> None:
    line = "2026-11-21 22:38:28|login01|usr1|159.226.3.7|QUERY_RESOURCE|cpus=8 app=app4"
    parts = decode(line)
    assert parts.workshop == "sce"
    assert parts.message == line
    assert parts.fields == {
        "time": "2026-11-21 22:38:28",
        "host": "login01",
        "user": "usr1",
        "addr": "159.226.3.7",
        "op": "QUERY_RESOURCE",
        "params": {"cpus": 8, "app": "app4"},
    }
    assert parts.time_ns == ns(datetime(2026, 11, 21, 22, 38, 28, tzinfo=SHANGHAI))


def test_last_column_keeps_separators_and_quotes_group_words() -> None:
    parts = decode('2026-11-21 22:38:28.250|login01|usr1|10.0.0.1|SUBMIT_JOB|'
                   'script="run a|b.sh" ratio=0.75 retries=-2 queue=007 force')  # fmt: skip
    assert parts.fields["params"] == {
        "script": "run a|b.sh", "ratio": 0.75, "retries": -2, "queue": "007", "force": True,
    }  # fmt: skip
    assert parts.time_ns == ns(datetime(2026, 11, 21, 22, 38, 28, 250000, tzinfo=SHANGHAI))


def test_quoted_values_with_escapes_stay_strings() -> None:
    assert parse_pairs(r'msg="say \"hi\"" n="8" empty=""') == {
        "msg": 'say "hi"', "n": "8", "empty": "",
    }  # fmt: skip


def test_convert_value_only_takes_plain_decimals() -> None:
    assert [convert_value(v) for v in ["8", "-3", "2.5", "1e5", "nan", "007", "0x1f", ""]] == [
        8, -3, 2.5, "1e5", "nan", "007", "0x1f", "",
    ]  # fmt: skip


def test_columns_are_stripped() -> None:
    parts = decode("2026-11-21T22:38:28Z | login01 | usr1 | 10.0.0.1 | LOGIN | ")
    assert parts.fields["user"] == "usr1"
    assert parts.fields["params"] == {}
    assert parts.time_ns == ns(datetime(2026, 11, 21, 22, 38, 28, tzinfo=UTC))


def test_custom_separators_and_time_format() -> None:
    parts = decode('21/11/2026 22:38:28;CREATE_GROUP;name:"hpc admins",gid:5001', "custom")
    assert parts.fields["params"] == {"name": "hpc admins", "gid": 5001}
    assert parts.fields["host"] == "collector"  # no host column: the collecting host
    assert parts.time_ns == ns(datetime(2026, 11, 21, 22, 38, 28, tzinfo=UTC))


def test_without_time_field_the_receive_time_is_used() -> None:
    parts = decode("usr1|LOGOUT", "notime")
    assert parts.time_ns == RECEIVED
    assert parts.fields == {"user": "usr1", "op": "LOGOUT", "host": "collector"}


def test_too_few_columns_names_the_count() -> None:
    with pytest.raises(DecodeError, match=r"expected 6 columns separated by '\|', found 3"):
        decode("2026-11-21 22:38:28|login01|usr1")


@pytest.mark.parametrize("bad", ["21/11/2026 22:38:28", "2026-13-01 00:00:00", "yesterday"])
def test_bad_time_is_an_error_not_a_silent_receive_time(bad: str) -> None:
    with pytest.raises(DecodeError, match="bad time"):
        decode(f"{bad}|login01|usr1|10.0.0.1|LOGIN|")


def test_bad_time_with_custom_format() -> None:
    with pytest.raises(DecodeError, match="expected %d/%m/%Y %H:%M:%S"):
        decode("2026-11-21 22:38:28;LOGIN;", "custom")


def test_invalid_utf8_is_decoded_with_replacement_characters() -> None:
    assert decode(b"2026-11-21 22:38:28|h\xc3(|u|a|LOGIN|x").fields["host"] == "h\ufffd("


# the definition convert_value implements with string methods
NUMBER_INT = re.compile(r"-?(?:0|[1-9][0-9]{0,17})")
NUMBER_FLOAT = re.compile(r"-?(?:0|[1-9][0-9]{0,17})\.[0-9]{1,17}")


@settings(max_examples=1000, deadline=None)
@given(
    st.text(alphabet="-0123456789.e_+ x\u0663\u00b2", max_size=24)
    | st.from_regex(NUMBER_FLOAT, fullmatch=True)
    | st.from_regex(NUMBER_INT, fullmatch=True)
)
def test_convert_value_follows_its_definition(text: str) -> None:
    expected: Any = text
    if NUMBER_INT.fullmatch(text):
        expected = int(text)
    elif NUMBER_FLOAT.fullmatch(text):
        expected = float(text)
    got = convert_value(text)
    assert type(got) is type(expected)
    assert got == expected


def test_convert_value_edges() -> None:
    cases: list[tuple[str, Any]] = [
        ("0", 0), ("-0", 0), ("00", "00"), ("0.0", 0.0), ("-0.5", -0.5),
        ("1" * 18, int("1" * 18)), ("1" * 19, "1" * 19),
        ("1." + "1" * 17, float("1." + "1" * 17)), ("1." + "1" * 18, "1." + "1" * 18),
        (".5", ".5"), ("5.", "5."), ("-", "-"), ("-.5", "-.5"), ("1.2.3", "1.2.3"),
        ("\u0663", "\u0663"), ("\u00b2", "\u00b2"), ("+1", "+1"), ("1_0", "1_0"),
    ]  # fmt: skip
    for text, expected in cases:
        got = convert_value(text)
        assert (type(got), got) == (type(expected), expected), text


def test_repeated_time_text_gives_the_same_time_and_the_same_errors() -> None:
    line = "2026-11-21 22:38:28|login01|usr1|10.0.0.1|LOGIN|"
    assert (
        decode(line).time_ns
        == decode(line).time_ns
        == ns(datetime(2026, 11, 21, 22, 38, 28, tzinfo=SHANGHAI))
    )
    for _ in range(2):  # the second is answered from the cache: still an error
        with pytest.raises(DecodeError, match="bad time"):
            decode("2026-13-01 00:00:00|login01|usr1|10.0.0.1|LOGIN|")
