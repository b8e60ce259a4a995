"""Time helpers: ISO shapes, zones and DST, year-less resolution, epoch units, bounds."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from logfactory.config import parse_config
from logfactory.factory.workshops import build_workshops
from logfactory.factory.workshops.timeparse import (
    parse_epoch,
    parse_iso,
    resolve_yearless,
    zone,
)
from logfactory.record import make_record

BERLIN = ZoneInfo("Europe/Berlin")


def ns(dt: datetime) -> int:
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


@pytest.mark.parametrize(
    ("text", "expected", "extra_ns"),
    [
        ("2026-11-21T22:38:28Z", datetime(2026, 11, 21, 22, 38, 28, tzinfo=UTC), 0),
        ("2026-11-21T22:38:28.123456789+01:00", datetime(2026, 11, 21, 21, 38, 28, tzinfo=UTC),
         123_456_789),
        ("2026-11-21T22:38:28-0530", datetime(2026, 11, 22, 4, 8, 28, tzinfo=UTC), 0),
        ("2026-11-21 22:38:28", datetime(2026, 11, 21, 22, 38, 28, tzinfo=BERLIN), 0),
        ("2026-07-21 22:38:28,5", datetime(2026, 7, 21, 22, 38, 28, 500000, tzinfo=BERLIN), 0),
        ("2026-11-21T22:38", datetime(2026, 11, 21, 22, 38, tzinfo=BERLIN), 0),
        (" 2026-11-21 22:38:28 UTC ", datetime(2026, 11, 21, 22, 38, 28, tzinfo=UTC), 0),
    ],
)  # fmt: skip
def test_parse_iso(text: str, expected: datetime, extra_ns: int) -> None:
    assert parse_iso(text, BERLIN) == ns(expected) + extra_ns


@pytest.mark.parametrize(
    "text",
    ["", "2026-11-21", "2026-02-30T00:00:00", "2026-11-21T24:00:00", "2026-11-21T23:61:00",
     "1800-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-11-21T22:38:28+0x:00", "tomorrow",
     "\u0662\u0660\u0662\u0666-11-21T22:38:28"],
)  # fmt: skip
def test_parse_iso_rejects(text: str) -> None:
    assert parse_iso(text, UTC) is None


def test_dst_gap_and_overlap_resolve_like_fold_zero() -> None:
    # 2026-03-29 02:30 does not exist in Berlin; 2026-10-25 02:30 exists twice
    gap = parse_iso("2026-03-29 02:30:00", BERLIN)
    overlap = parse_iso("2026-10-25 02:30:00", BERLIN)
    assert gap == ns(datetime(2026, 3, 29, 2, 30, tzinfo=BERLIN))
    assert overlap == ns(datetime(2026, 10, 25, 2, 30, fold=0, tzinfo=BERLIN))


def test_yearless_picks_the_year_closest_to_receive_time() -> None:
    received = ns(datetime(2027, 1, 1, 0, 0, 1, tzinfo=BERLIN))
    assert resolve_yearless(BERLIN, received, 12, 31, 23, 59, 59) == ns(
        datetime(2026, 12, 31, 23, 59, 59, tzinfo=BERLIN)
    )
    received = ns(datetime(2026, 6, 1, tzinfo=BERLIN))
    assert (
        resolve_yearless(BERLIN, received, 6, 1, 0, 0, 5, 250)
        == ns(datetime(2026, 6, 1, 0, 0, 5, tzinfo=BERLIN)) + 250
    )


def test_yearless_feb_29_takes_the_nearest_leap_year() -> None:
    received = ns(datetime(2029, 1, 10, tzinfo=UTC))  # 2029 is not a leap year; 2028 is
    assert resolve_yearless(UTC, received, 2, 29, 12, 0, 0) == ns(
        datetime(2028, 2, 29, 12, tzinfo=UTC)
    )
    assert resolve_yearless(UTC, ns(datetime(2026, 6, 1, tzinfo=UTC)), 2, 29, 12, 0, 0) is None


def test_yearless_uses_the_zone_year_not_the_utc_year() -> None:
    # 23:30 UTC on Dec 31 is already Jan 1 in Tokyo: a "Jan  1 08:30" line is this year's
    tokyo = zone("Asia/Tokyo")
    received = ns(datetime(2026, 12, 31, 23, 30, tzinfo=UTC))
    assert resolve_yearless(tokyo, received, 1, 1, 8, 30, 0) == ns(
        datetime(2027, 1, 1, 8, 30, tzinfo=tokyo)
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1795300708, 1795300708 * 10**9), (1795300708.5, 1795300708_500_000_000),
     (1795300708123, 1795300708_123_000_000), (1795300708123456, 1795300708_123_456_000),
     (1795300708123456789, 1795300708_123_456_789), (-1, None), (float("nan"), None),
     (float("inf"), None), (10**30, None), (0, 0)],
)  # fmt: skip
def test_parse_epoch(value: float, expected: int | None) -> None:
    assert parse_epoch(value) == expected


def test_zone_utc_is_the_fixed_zone() -> None:
    assert zone("UTC") is UTC
    assert zone("Europe/Berlin") == BERLIN


def test_build_workshops() -> None:
    workshops = build_workshops(
        parse_config(
            "workshops: {s: {format: syslog, delegate: {j: j}}, j: {format: json},"
            " k: {format: kv, fields: [a]}, l: {format: slurm}}"
        )
    )
    assert {name: ws.name for name, ws in workshops.items()} == {
        "s": "s", "j": "j", "k": "k", "l": "l",
    }  # fmt: skip
    record = make_record("s", "h", "<13>Nov 21 22:38:28 h j: {}", received=10**18 * 2)
    assert workshops["s"].decode(record).workshop == "j"
