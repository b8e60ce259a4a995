"""Resume cursors: exact round trips, and any other text is a CursorError, never a crash."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logfactory.cursor import MAX_CURSOR_CHARS, CursorError, decode_cursor, encode_cursor

positions = st.dictionaries(
    st.text(min_size=1, max_size=40),
    st.lists(st.integers(min_value=-1, max_value=2**40), max_size=16),
    max_size=10,
)


@settings(deadline=None)  # the default 200 ms per example flakes on a loaded machine
@given(positions)
def test_round_trip(p: dict[str, list[int]]) -> None:
    text = encode_cursor(p)
    assert decode_cursor(text) == p
    assert text.isascii()
    assert all(c.isalnum() or c in "-_" for c in text)


@settings(deadline=None)  # the default 200 ms per example flakes on a loaded machine
@given(st.text(max_size=200))
def test_any_text_decodes_or_raises_cursor_error(text: str) -> None:
    try:
        decoded = decode_cursor(text)
    except CursorError:
        return
    assert all(isinstance(v, list) for v in decoded.values())


def test_compact_and_order_independent() -> None:
    a = encode_cursor({"events.ALERT": [12, 40_000, 3, 0], "events.JOB_STATUS": [1, 2, 3, 4]})
    b = encode_cursor({"events.JOB_STATUS": [1, 2, 3, 4], "events.ALERT": [12, 40_000, 3, 0]})
    assert a == b
    assert len(a) < 80


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("2abc", "version"),
        ("1!!!", "base64"),
        ("1" + "A" * 8, "malformed"),
        (encode_cursor({"t": [-2]}), "negative"),
        ("1" + "A" * MAX_CURSOR_CHARS, "oversized"),
    ],
)
def test_rejections_say_why(text: str, reason: str) -> None:
    with pytest.raises(CursorError, match=re.escape(reason)):
        decode_cursor(text)
