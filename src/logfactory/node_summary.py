"""The node's one-line live summary: the time, what came in, what went out, and how fast.

Why a module of its own: on a terminal the line is redrawn in place once a second, and a line
wider than the terminal wraps, after which ``\\r`` returns only to the start of its last row and
every redraw leaves a stale row behind (an 80-column terminal, tmux panes). So the line is cut
to the terminal's width minus three: one because the last column moves the cursor in some
terminals, two for the ``^C`` the terminal echoes at Ctrl-C, which must land on the summary's
row to be erased with it (at width - 1 it wrapped, and its ``^`` stayed on screen). Counters
that are still zero are left out, and the per-type counts, the least important part, come
last where the cut falls. These rules are tested on the pure :meth:`LiveSummary.line`.

On an edge that ships over HTTP (``bus.type: http``) nothing is decoded locally, so the line
shows records in only: event counters there would be somebody else's, or zero.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from logfactory.stats import read_all_stats

__all__ = [
    "LiveSummary",
    "SummaryLogHandler",
    "SummaryScreen",
    "Totals",
    "fit",
    "read_totals",
]

CLEAR_LINE = "\r\x1b[2K"  # to column 0, erase the row: also erases an echoed "^C"


@dataclass
class Totals:
    """Counters summed over the node's processes (live and dead: their work was done)."""

    records_in: int = 0
    events: dict[str, int] = field(default_factory=dict)
    dead: int = 0

    @property
    def events_out(self) -> int:
        return sum(self.events.values())


def read_totals(stats_dir: Path) -> Totals:
    """Records in (every ``source:*``), events out by type, dead letters."""
    totals = Totals()
    for snap in read_all_stats(stats_dir):
        for group, counters in snap.get("counters", {}).items():
            if group.startswith("source:"):
                totals.records_in += int(counters.get("received", 0))
            elif group.startswith("events:"):
                name = group.split(":", 1)[1]
                totals.events[name] = totals.events.get(name, 0) + int(counters.get("sent", 0))
            elif group == "deadletter":
                totals.dead += int(counters.get("sent", 0))
    return totals


MARGIN = 3  # columns left free at the right: see the module docstring


def fit(line: str, width: int | None) -> str:
    """``line`` cut to ``width - MARGIN`` columns (an ellipsis marks the cut); None: not cut."""
    if width is None:
        return line
    room = max(2, width - MARGIN)
    if len(line) <= room:
        return line
    return line[: room - 1] + "…"


def _rate(per_s: float) -> str:
    return f"{per_s:.1f}/s" if 0 < per_s < 10 else f"{per_s:.0f}/s"


class LiveSummary:
    """Keeps the last totals to turn counters into rates; ``events=False`` for an HTTP edge."""

    def __init__(self, types: list[str], *, events: bool = True) -> None:
        self.types = types
        self.events = events
        self.totals = Totals()
        self.in_rate = 0.0
        self.out_rate = 0.0
        self._base: tuple[Totals, float] | None = None  # what the rates are measured from
        self.measured = False  # no rates before two updates

    MIN_SPAN_S = 0.5  # a shorter span (the last line, drawn at stop) keeps the previous rates

    def update(self, totals: Totals, now: float) -> None:
        """Take new totals; rates are per second since the previous update (never negative:
        a restarted process's counters start again from zero)."""
        self.totals = totals
        if self._base is not None:
            base, at = self._base
            span = now - at
            if span < self.MIN_SPAN_S:
                return
            self.in_rate = max(0, totals.records_in - base.records_in) / span
            self.out_rate = max(0, totals.events_out - base.events_out) / span
            self.measured = True
        self._base = (totals, now)

    def line(
        self, width: int | None = None, clock: str | None = None, *, rates: bool = True
    ) -> str:
        """``12:04:05 | in=1200 50/s | events=800 38/s | dead=2 | ALERT=1 USER_OP=40 ...``;
        ``rates=False`` for the last line, at stop, where the sources have stopped already."""
        t = self.totals
        rates = rates and self.measured
        in_rate = f" {_rate(self.in_rate)}" if rates else ""
        parts = [clock or time.strftime("%H:%M:%S"), f"in={t.records_in}{in_rate}"]
        if self.events:
            if t.events_out:
                out_rate = f" {_rate(self.out_rate)}" if rates else ""
                parts.append(f"events={t.events_out}{out_rate}")
            if t.dead:
                parts.append(f"dead={t.dead}")
            known = [*self.types, *sorted(set(t.events) - set(self.types))]
            counts = [f"{name}={t.events[name]}" for name in known if t.events.get(name)]
            if counts:
                parts.append(" ".join(counts))
        return fit(" | ".join(parts), width)


class SummaryScreen:
    """Where the summary goes. On a terminal one row is redrawn in place, and whatever else is
    printed (:meth:`say`, log lines through :class:`SummaryLogHandler`) first takes that row
    back, so every message starts at column 0; elsewhere (a file, a pipe) each summary is a
    line of its own, uncut."""

    def __init__(self, out: TextIO, *, tty: bool | None = None) -> None:
        self.out = out
        self.tty = out.isatty() if tty is None else tty
        self.on_screen = False

    def width(self) -> int | None:
        return shutil.get_terminal_size().columns if self.tty else None

    def draw(self, line: str) -> None:
        if self.tty:
            self.out.write(f"{CLEAR_LINE}{line}")
            self.on_screen = True
        else:
            self.out.write(f"{line}\n")
        self.out.flush()

    def clear(self) -> None:
        """Erase the summary's row (and an echoed ``^C`` on it), if one is drawn."""
        if self.on_screen:
            self.out.write(CLEAR_LINE)
            self.out.flush()
            self.on_screen = False

    def finish(self, line: str) -> None:
        """Draw ``line`` a last time and end its row: what follows starts on a new line."""
        self.draw(line)
        if self.tty:
            self.out.write("\n")
            self.out.flush()
            self.on_screen = False

    def say(self, text: str) -> None:
        self.clear()
        self.out.write(f"{text}\n")
        self.out.flush()


class SummaryLogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Log lines (stderr) on the terminal where the summary is drawn: its row is erased first,
    so a warning starts at column 0 instead of after the counters; the summary is drawn again
    below it within a second. The format is Python's own when logging is not configured."""

    def __init__(self, screen: SummaryScreen) -> None:
        super().__init__(sys.stderr)
        self.setLevel(logging.WARNING)
        self.setFormatter(logging.Formatter("%(message)s"))
        self.screen = screen

    def emit(self, record: logging.LogRecord) -> None:
        self.screen.clear()
        super().emit(record)
