"""Histogram intervals: the automatic width gives 60-120 buckets from round widths, never
fails; a written width is read exactly and refused when it would make too many buckets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logfactory.errors import QueryError
from logfactory.store.query.intervals import (
    MAX_BUCKETS,
    ROUND_WIDTHS,
    TARGET_BUCKETS,
    auto_interval,
    bucket_count,
    check_buckets,
    format_interval,
    parse_interval,
)

S = 1_000_000_000
M, H, D = 60 * S, 3600 * S, 86400 * S
T0 = 1_796_515_200 * S


@pytest.mark.parametrize(
    ("span", "width"),
    [
        (0, S),
        (-5 * S, S),
        (1, S),
        (120 * S, S),
        (120 * S + 1, 2 * S),
        (15 * M, 10 * S),
        (H, 30 * S),
        (2 * H, M),
        (24 * H, 15 * M),
        (7 * D, 2 * H),
        (30 * D, 6 * H),
        (90 * D, D),
        (120 * D, D),
        (120 * D + 1, 2 * D),
        (365 * D, 7 * D),
        (120 * 30 * D, 30 * D),
    ],
)
def test_auto_interval_is_the_smallest_round_width_giving_at_most_120(
    span: int, width: int
) -> None:
    assert auto_interval(T0, T0 + span) == width


@given(st.integers(0, 2**63 - 1), st.integers(0, 2**62))
def test_auto_interval_always_gives_at_most_120_buckets(start: int, span: int) -> None:
    width = auto_interval(start, start + span)
    assert bucket_count(start, start + span, width) <= TARGET_BUCKETS
    if width in ROUND_WIDTHS:
        smaller = [w for w in ROUND_WIDTHS if w < width]
        assert all(bucket_count(start, start + span, w) > TARGET_BUCKETS for w in smaller)
    else:  # beyond ten years: a whole number of 30-day months
        assert width % (30 * D) == 0
        assert span > TARGET_BUCKETS * 30 * D
        assert bucket_count(start, start + span, width - 30 * D) > TARGET_BUCKETS


def test_a_window_of_millennia_still_gets_an_interval() -> None:
    span = 1000 * 365 * D  # beyond 64-bit nanoseconds: the function takes any int
    width = auto_interval(0, span)
    assert bucket_count(0, span, 30 * D) > MAX_BUCKETS
    assert bucket_count(0, span, width) <= TARGET_BUCKETS


@pytest.mark.parametrize(
    ("text", "width"),
    [("1s", S), ("30s", 30 * S), ("5m", 5 * M), (" 1h ", H), ("1d", D), ("2w", 14 * D)],
)
def test_parse_interval(text: str, width: int) -> None:
    assert parse_interval(text) == width
    assert parse_interval(format_interval(width)) == width


@pytest.mark.parametrize("text", ["", "5", "m", "5x", "-5m", "1.5h", "5 m", "0s"])
def test_a_bad_interval_says_what_to_write(text: str) -> None:
    with pytest.raises(QueryError, match=r"interval .*: write 30s, 5m, 1h or 1d"):
        parse_interval(text)


@pytest.mark.parametrize(
    ("width", "text"),
    [(S, "1s"), (90 * S, "90s"), (5 * M, "5m"), (H, "1h"), (7 * D, "1w"), (S // 2, "0.5s")],
)
def test_format_interval_is_the_shortest_exact_text(width: int, text: str) -> None:
    assert format_interval(width) == text


def test_check_buckets_refuses_more_than_the_cap_and_names_a_width_that_fits() -> None:
    check_buckets(T0, T0 + MAX_BUCKETS * S, S)
    with pytest.raises(QueryError) as caught:
        check_buckets(T0, T0 + 7 * D, S)
    assert str(caught.value) == (
        "the interval 1s cuts this window into 604,800 buckets; at most 10,000: write 2m or more"
    )  # 1m would make 10,080
    assert bucket_count(T0, T0 + 7 * D, M) == 10_080
