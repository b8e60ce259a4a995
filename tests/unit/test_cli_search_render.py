"""How the search commands print: widths that never wrap, colour only on a terminal, times in
the local zone, the footer, CSV that parses back, the bars of top and histogram, the caret
under a bad query's column."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.cells import cell_len
from rich.console import Console

from logfactory.cli_search import _bound, _interval_text
from logfactory.cli_search_render import (
    Widths,
    bar,
    caret_lines,
    csv_lines,
    footer,
    header_line,
    histogram_lines,
    hit_line,
    json_line,
    local_time,
    render,
    severity_style,
    top_lines,
)

HIT: dict[str, Any] = {
    "id": "logs.raw/0/17",
    "kind": "log",
    "time": "2026-12-06T10:00:00.123456Z",
    "received": "2026-12-06T10:00:00.200000Z",
    "host": "cn01",
    "source": "syslog",
    "severity": "error",
    "message": "Failed password for root from 10.3.17.5 port 22",
    "fields": {"user": "root", "port": 22},
}


@pytest.fixture
def kolkata(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A local zone 5 h 30 from UTC, so a time left in UTC cannot pass for local."""
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _printed(lines: list[Any], *, terminal: bool, width: int = 100) -> str:
    out = io.StringIO()
    console = Console(
        file=out,
        width=width,
        force_terminal=terminal,
        color_system="standard" if terminal else None,
    )
    render(console, lines)
    return out.getvalue()


def test_times_are_shown_in_the_local_zone_to_the_millisecond(kolkata: None) -> None:
    assert local_time("2026-12-06T10:00:00.123456Z") == "2026-12-06 15:30:00.123"
    assert local_time(1_796_551_200_000_000_000, ms=False) == "2026-12-06 15:30:00"
    assert "15:30:00.123" in hit_line(HIT, Widths(total=120)).plain


def test_a_time_it_cannot_read_is_shown_as_it_is_escaped() -> None:
    assert local_time("yesterday\x1b[2J") == "yesterday\\x1b[2J"


@pytest.mark.parametrize(
    ("severity", "style"),
    [
        ("emerg", "red"), ("alert", "red"), ("crit", "red"), ("error", "red"),
        ("high", "red"), ("critical", "red"), ("warning", "yellow"), ("medium", "yellow"),
        ("notice", ""), ("info", ""), ("low", ""), ("debug", "dim"), ("", ""),
    ],
)  # fmt: skip
def test_severities_are_coloured_as_an_operator_scans_them(severity: str, style: str) -> None:
    assert severity_style(severity) == style


def test_colour_only_on_a_terminal() -> None:
    line = hit_line(HIT, Widths(total=100))
    assert "\x1b[" not in _printed([line], terminal=False)
    coloured = _printed([line], terminal=True)
    assert "\x1b[31merror" in coloured  # red


_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=300)


@given(
    message=_TEXT,
    host=_TEXT,
    source=_TEXT,
    kind=st.sampled_from(["log", "event"]),
    total=st.integers(min_value=20, max_value=250),
)
def test_a_line_never_outgrows_the_width_nor_breaks(
    message: str, host: str, source: str, kind: str, total: int
) -> None:
    hit = {**HIT, "message": message, "host": host, "source": source, "kind": kind,
           "type": "ALERT", "subtype": source}  # fmt: skip
    line = hit_line(hit, Widths.fit([hit], total))
    assert cell_len(line.plain) <= total
    for control in ("\n", "\r", "\x1b"):
        assert control not in line.plain
    printed = _printed([line], terminal=False, width=total)
    assert printed.count("\n") == 1


def test_columns_line_up_across_a_page_and_cut_long_cells() -> None:
    hits = [
        {**HIT, "host": "a", "message": "short"},
        {**HIT, "host": "a-very-long-host-name-beyond-any-column", "message": "x" * 500},
        {**HIT, "kind": "event", "type": "ALERT", "subtype": "brute_force", "severity": "high",
         "message": "ünïcode 日本語 message"},
    ]  # fmt: skip
    widths = Widths.fit(hits, 100)
    lines = [header_line(widths).plain] + [hit_line(h, widths).plain for h in hits]
    starts = {cell_len(line[: line.index(m)]) for line, m in zip(
        lines, ["message", "short", "xxx", "ünïcode"], strict=True)}  # fmt: skip
    assert len(starts) == 1, lines  # the message column begins at one place on every line
    assert "…" in lines[2]  # the long host and the long message are cut, not wrapped
    assert all(cell_len(line) <= 100 for line in lines)
    assert "ALERT/brute_force" in lines[3]


def test_the_footer_says_how_many_of_how_many_and_how_long() -> None:
    answer = {"total": 12345, "timed_out": False, "capped": False}
    assert footer(100, answer, 0.0412) == "100 of 12,345 matches (0.041 s)"
    cut = footer(3, {"total": None, "timed_out": True}, 10.0)
    assert cut.startswith("3 of ? (not counted) matches (10.000 s)")
    assert "timed out" in cut


def test_json_lines_are_ascii_and_parse_back() -> None:
    hit = {**HIT, "message": "naïve \x1b[31m 日本"}
    line = json_line(hit)
    assert line.isascii()
    assert "\n" not in line
    assert json.loads(line) == hit


def test_csv_parses_back_with_fields_as_json_and_chosen_decoded_fields() -> None:
    hits = [HIT, {**HIT, "id": "b", "message": 'a "quoted", comma\nand newline', "fields": {}}]
    rows = list(csv.reader(io.StringIO(csv_lines(hits, ("id", "message", "fields"), True))))
    assert rows[0] == ["id", "message", "fields"]
    assert rows[1] == ["logs.raw/0/17", HIT["message"], '{"user":"root","port":22}']
    assert rows[2] == ["b", 'a "quoted", comma\nand newline', "{}"]
    chosen = list(csv.reader(io.StringIO(csv_lines(hits, ("id", "fields.port"), False))))
    assert chosen == [["logs.raw/0/17", "22"], ["b", ""]]


def test_bars_scale_to_the_largest() -> None:
    assert bar(50, 100, 40) == "█" * 20
    assert bar(100, 100, 40) == "█" * 40
    assert bar(1, 1_000_000, 40) == "█"  # a count above 0 is never invisible
    assert bar(0, 100, 40) == ""


def test_top_shows_value_count_share_and_a_bar() -> None:
    answer = {
        "field": "host",
        "buckets": [{"key": "cn01", "count": 300}, {"key": "cn02", "count": 100}],
        "other": 80,
        "missing": 20,
    }
    lines = [t.plain for t in top_lines(answer, 80)]
    assert lines[0].split() == ["value", "count", "share"]
    assert lines[1].split()[:3] == ["cn01", "300", "60.0%"]
    assert lines[2].split()[:3] == ["cn02", "100", "20.0%"]
    assert abs(lines[1].count("█") - 3 * lines[2].count("█")) <= 2  # rounded
    assert all(cell_len(line) <= 80 for line in lines)
    assert lines[3] == "other values: 80; without host: 20"


def test_histogram_bars_fill_the_width_with_local_labels(kolkata: None) -> None:
    start = 1_796_551_200_000_000_000  # 2026-12-06T10:00:00Z
    five_minutes = 300_000_000_000
    answer = {
        "interval": five_minutes,
        "buckets": [
            {"key": start, "count": 10},
            {"key": start + five_minutes, "count": 0},
            {"key": "2026-12-06T10:10:00Z", "count": 1000},
        ],
    }
    for width in (60, 120):
        lines = [t.plain for t in histogram_lines(answer, width)]
        assert [line[:19] for line in lines] == [
            "2026-12-06 15:30:00", "2026-12-06 15:35:00", "2026-12-06 15:40:00"]  # fmt: skip
        assert cell_len(lines[2]) == width  # the longest bar fills the line
        assert lines[1].rstrip().endswith(" 0")
        assert "█" not in lines[1]
        assert 0 < lines[0].count("█") < lines[2].count("█")
    assert _interval_text(five_minutes) == "5m"
    assert _interval_text(3_600_000_000_000) == "1h"
    assert _interval_text("15m") == "15m"


def test_a_bad_query_is_shown_with_a_caret_under_its_column() -> None:
    lines = caret_lines("host:cn01 AND (sshd", 20, "expected ')' at column 20")
    assert lines == [
        "  host:cn01 AND (sshd",
        "                     ^",
        "Error: expected ')' at column 20",
    ]
    assert caret_lines("a\x1bb c", 5, "bad")[1] == "  " + " " * len("a\\x1bb ") + "^"
    assert caret_lines("x", None, "no column") == ["Error: no column"]


@pytest.mark.parametrize(
    ("given_", "sent"),
    [("1h", "-1h"), ("-1h", "-1h"), ("90m", "-90m"), ("7d", "-7d"), ("now", "now"),
     ("2026-12-06T10:00:00Z", "2026-12-06T10:00:00Z"), ("2026-12-06", "2026-12-06"),
     (None, None)],
)  # fmt: skip
def test_a_bare_duration_is_a_time_ago(given_: str | None, sent: str | None) -> None:
    assert _bound(given_) == sent
