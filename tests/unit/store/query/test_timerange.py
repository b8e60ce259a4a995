"""Time expressions -> UTC nanoseconds: relative, RFC 3339 (to the nanosecond), dates, errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logfactory.errors import QueryError
from logfactory.store.query.timerange import MAX_NS, MIN_NS, format_time, parse_time_bound

NOW = 1_796_558_400_123_456_789  # 2026-12-06T12:00:00.123456789Z
S = 1_000_000_000
DEC6 = 1_796_515_200 * S  # 2026-12-06T00:00:00Z


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        (" NOW ", NOW),
        ("-30s", NOW - 30 * S),
        ("-15m", NOW - 900 * S),
        ("-2h", NOW - 7200 * S),
        ("-7d", NOW - 7 * 86400 * S),
        ("-1w", NOW - 7 * 86400 * S),
        ("1h", NOW - 3600 * S),
        ("-0m", NOW),
        ("2026-12-06", DEC6),
        ("2026-12-06T10:00:00Z", DEC6 + 36000 * S),
        ("2026-12-06t10:00:00z", DEC6 + 36000 * S),
        ("2026-12-06 10:00:00Z", DEC6 + 36000 * S),
        ("2026-12-06T10:00Z", DEC6 + 36000 * S),
        ("2026-12-06T10:00:00", DEC6 + 36000 * S),
        ("2026-12-06T11:00:00+01:00", DEC6 + 36000 * S),
        ("2026-12-06T05:30:00-04:30", DEC6 + 36000 * S),
        ("2026-12-06T10:00:00.5Z", DEC6 + 36000 * S + 500_000_000),
        ("2026-12-06T10:00:00.123456789Z", DEC6 + 36000 * S + 123_456_789),
        ("2026-12-06T10:00:00.1234567891234Z", DEC6 + 36000 * S + 123_456_789),
        ("1970-01-01T00:00:00Z", 0),
        ("1969-12-31T23:59:59.999999999Z", -1),
    ],
)
def test_each_form_of_time(text: str, expected: int) -> None:
    assert parse_time_bound(text, NOW) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("-15x", "unknown time '-15x': write -15m, -2h, -7d, now or 2026-12-06T10:00:00Z"),
        ("", "unknown time ''"),
        ("yesterday", "unknown time 'yesterday'"),
        ("+15m", "unknown time '+15m'"),
        ("-15M", "unknown time '-15M'"),
        ("2026-12-6", "unknown time '2026-12-6'"),
        ("2026-02-30", "unknown time '2026-02-30': day is out of range for month"),
        ("2026-12-06T25:00:00Z", "unknown time '2026-12-06T25:00:00Z': hour must be in 0..23"),
        ("2026-12-06T10:00:00+25:00", "the offset +25:00 is too large"),
        ("2026-12-06+01:00", "unknown time"),
        ("9999-12-31", "outside what the store keeps (1678 to 2262)"),
        ("-999999999999w", "outside what the store keeps"),
    ],
)
def test_a_time_that_cannot_be_read_is_a_query_error_saying_what_to_write(
    text: str, words: str
) -> None:
    with pytest.raises(QueryError) as caught:
        parse_time_bound(text, NOW)
    assert words in str(caught.value)
    assert caught.value.column is None


def test_the_edges_of_64_bit_nanoseconds_are_kept() -> None:
    assert parse_time_bound(format_time(MAX_NS), 0) == MAX_NS
    assert parse_time_bound(format_time(MIN_NS), 0) == MIN_NS


@given(st.integers(MIN_NS, MAX_NS))
def test_format_time_reads_back_to_the_same_nanosecond(ns: int) -> None:
    text = format_time(ns)
    assert text.endswith("Z")
    assert parse_time_bound(text, 0) == ns
