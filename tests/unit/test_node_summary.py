"""The node's live summary line: fits the terminal, shows what is non-zero, rates, the time;
and the screen it is drawn on ends its row before anything else is printed."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from logfactory.node_summary import (
    CLEAR_LINE,
    LiveSummary,
    SummaryScreen,
    Totals,
    fit,
    read_totals,
)
from logfactory.stats import StatsRegistry, StatsWriter

TYPES = ["USER_OP", "ADMIN_OP", "JOB_STATUS", "APP_STATUS", "CLUSTER_STATUS", "ALERT"]
TYPES += ["NEW_PATTERN", "SSH_LOGIN", "AUTH_FAILURE"]


def busy(seconds: float = 10.0) -> LiveSummary:
    """A summary after two updates ``seconds`` apart, every event type busy."""
    summary = LiveSummary(TYPES)
    summary.update(Totals(records_in=1000, events={t: 100 for t in TYPES}, dead=1), 100.0)
    summary.update(
        Totals(records_in=1500, events={t: 150_000 for t in TYPES}, dead=12), 100.0 + seconds
    )
    return summary


@pytest.mark.parametrize("width", [80, 60, 40, 20])
def test_the_line_never_reaches_the_last_columns_of_the_terminal(width: int) -> None:
    line = busy().line(width, clock="12:04:05")
    # a row as wide as the terminal wraps (and the ^C echoed at Ctrl-C must fit after it)
    assert len(line) <= width - 3
    assert line.startswith("12:04:05 | in=1"[: width - 4])
    assert line.endswith("…")


def test_a_line_that_fits_is_not_cut_and_no_width_means_no_cut() -> None:
    summary = LiveSummary(TYPES)
    summary.update(Totals(records_in=7), 1.0)
    assert summary.line(80, clock="12:04:05") == "12:04:05 | in=7"
    full = busy().line(None, clock="t")
    assert "AUTH_FAILURE=150000" in full
    assert "…" not in full
    assert fit("abc", 6) == "abc"
    assert fit("abcdef", 6) == "ab…"


def test_only_non_zero_counters_with_rates_per_second() -> None:
    summary = LiveSummary(TYPES)
    summary.update(Totals(records_in=100, events={"ALERT": 0, "USER_OP": 4}), 10.0)
    # one update: no rates yet (there is nothing to measure them from)
    assert summary.line(None, clock="t") == "t | in=100 | events=4 | USER_OP=4"
    summary.update(Totals(records_in=200, events={"USER_OP": 9, "ALERT": 1}, dead=2), 12.0)
    assert summary.line(None, clock="t") == (
        "t | in=200 50/s | events=10 3.0/s | dead=2 | USER_OP=9 ALERT=1"
    )
    # the last line, at stop, carries totals only
    assert summary.line(None, clock="t", rates=False) == (
        "t | in=200 | events=10 | dead=2 | USER_OP=9 ALERT=1"
    )


def test_a_quick_last_update_keeps_the_rates_and_counters_never_go_backwards() -> None:
    summary = busy(seconds=10.0)
    assert summary.in_rate == 50.0
    summary.update(Totals(records_in=1501), 110.1)  # drawn at stop, 0.1 s later
    assert summary.in_rate == 50.0
    assert summary.totals.records_in == 1501
    summary.update(Totals(records_in=0), 120.0)  # a restarted process: from zero again
    assert summary.in_rate == 0.0


def test_an_http_edge_shows_records_in_only() -> None:
    summary = LiveSummary(TYPES, events=False)
    summary.update(Totals(records_in=10, events={"ALERT": 3}, dead=4), 1.0)
    summary.update(Totals(records_in=30, events={"ALERT": 5}, dead=4), 2.0)
    assert summary.line(80, clock="t") == "t | in=30 20/s"


def test_totals_are_summed_over_the_processes_stats_files(tmp_path: Path) -> None:
    node, factory = StatsRegistry("node"), StatsRegistry("factory-1")
    node.add_many("source:syslog", received=5)
    node.add_many("source:demo", received=7)
    factory.add("events:ALERT", "sent", 2)
    factory.add("events:SITE_TYPE", "sent", 1)
    factory.add("deadletter", "sent", 3)
    for reg in (node, factory):
        StatsWriter(reg, tmp_path).write_now()
    totals = read_totals(tmp_path)
    assert (totals.records_in, totals.events, totals.dead) == (
        12, {"ALERT": 2, "SITE_TYPE": 1}, 3
    )  # fmt: skip
    summary = LiveSummary(["ALERT"])
    summary.update(totals, 1.0)
    assert summary.line(None, clock="t").endswith("ALERT=2 SITE_TYPE=1")  # unknown types too


def test_on_a_terminal_the_row_is_redrawn_and_ended_before_any_message() -> None:
    out = io.StringIO()
    screen = SummaryScreen(out, tty=True)
    screen.draw("in=1")
    screen.draw("in=2")
    screen.say("factory exited with 1; restarting (#1)")
    screen.draw("in=3")
    # Ctrl-C: the terminal echoes "^C" onto the row; the last line erases it and ends the row
    out.write("^C")
    screen.finish("in=4")
    screen.say("stopped cleanly")
    assert out.getvalue() == (
        f"{CLEAR_LINE}in=1{CLEAR_LINE}in=2{CLEAR_LINE}factory exited with 1; restarting (#1)\n"
        f"{CLEAR_LINE}in=3^C{CLEAR_LINE}in=4\nstopped cleanly\n"
    )
    rows = out.getvalue().split("\n")
    assert rows[-2] == "stopped cleanly"  # a message of its own row, not after the counters


def test_elsewhere_each_summary_is_a_line_of_its_own() -> None:
    out = io.StringIO()
    screen = SummaryScreen(out, tty=False)
    screen.draw("in=1")
    screen.finish("in=2")
    screen.say("stopped cleanly")
    assert out.getvalue() == "in=1\nin=2\nstopped cleanly\n"
    assert screen.width() is None
