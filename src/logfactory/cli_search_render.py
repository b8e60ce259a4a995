"""How ``logfactory search``, ``top`` and ``histogram`` print what the node's search API
answers: pure functions from the API's JSON to lines, so they are tested without a node.

People read a table; programs read JSON lines (or CSV). A table is one line per hit with
fixed columns (time in the **local** time zone to the millisecond, host, severity, kind or
event type, source, message), each cell cut to its width with an ellipsis and the message cut
to what is left of the terminal's width: a line never wraps. Severity is coloured the way an
operator scans a list (syslog's emerg/alert/crit/error and the events' high/critical red,
warning and medium yellow, debug dim); colour is rich's decision, so it is off when stdout is
not a terminal or ``NO_COLOR`` is set. Every cell is one line of printable text: what a node
stores came from anyone's log lines, and control characters are escaped (``\\x1b``) so a log
line cannot drive the terminal.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rich.cells import cell_len, set_cell_size
from rich.console import Console
from rich.text import Text

from logfactory.cli_api import clean

__all__ = [
    "CSV_COLUMNS",
    "Widths",
    "bar",
    "caret_lines",
    "csv_lines",
    "footer",
    "header_line",
    "histogram_lines",
    "hit_line",
    "json_line",
    "local_time",
    "parse_moment",
    "render",
    "severity_style",
    "top_lines",
]

#: the columns of CSV output when ``--fields`` chooses none (decoded fields as JSON text)
CSV_COLUMNS = ("time", "host", "severity", "kind", "type", "source", "message", "id", "fields")

_RED = frozenset({"emerg", "alert", "crit", "error", "high", "critical"})
_YELLOW = frozenset({"warning", "medium"})
_DIM = frozenset({"debug"})
_TIME_WIDTH = len("2026-12-06 13:04:05.123")
_GAP = "  "
_BAR = "█"


def severity_style(severity: str) -> str:
    """rich's style for a severity ("" for the ones that need no colour)."""
    if severity in _RED:
        return "red"
    if severity in _YELLOW:
        return "yellow"
    if severity in _DIM:
        return "dim"
    return ""


def parse_moment(value: object) -> datetime | None:
    """An API time (RFC 3339 text, or UTC nanoseconds) as an aware datetime; ``None`` for
    anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return datetime.fromtimestamp(value / 1e9, tz=UTC)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return None


def local_time(value: object, *, ms: bool = True) -> str:
    """An API time in this machine's time zone, ``2026-12-06 14:04:05.123`` (to the second
    without ``ms``); what it cannot read, as it is."""
    moment = parse_moment(value)
    if moment is None:
        return clean(value)
    local = moment.astimezone()
    text = local.strftime("%Y-%m-%d %H:%M:%S")
    return f"{text}.{local.microsecond // 1000:03d}" if ms else text


@dataclass(frozen=True)
class Widths:
    """The table's column widths; the message takes what is left of ``total``."""

    total: int
    host: int = 16
    severity: int = 8
    kind: int = 14
    source: int = 14

    @classmethod
    def fit(cls, hits: Sequence[Mapping[str, Any]], total: int) -> Widths:
        """Columns as wide as their widest cell among ``hits`` (within bounds), so a page's
        table is aligned and as narrow as it can be."""

        def widest(cells: Iterable[str], low: int, high: int) -> int:
            return max([low, *(min(cell_len(c), high) for c in cells)])

        return cls(
            total=total,
            host=widest((clean(h.get("host", "")) for h in hits), 4, 24),
            severity=widest((clean(h.get("severity", "")) for h in hits), 8, 10),
            kind=widest((_kind(h) for h in hits), 4, 20),
            source=widest((clean(h.get("source", "")) for h in hits), 6, 20),
        )

    @property
    def message(self) -> int:
        fixed = _TIME_WIDTH + self.host + self.severity + self.kind + self.source
        return max(10, self.total - fixed - 5 * len(_GAP))


def _kind(hit: Mapping[str, Any]) -> str:
    """``log``, or an event's type (with its subtype: ``ALERT/brute_force``)."""
    if hit.get("kind") == "event":
        kind = clean(hit.get("type", "event"))
        subtype = hit.get("subtype")
        return f"{kind}/{clean(subtype)}" if subtype else kind
    return clean(hit.get("kind", "log"))


def _cell(text: str, width: int) -> str:
    """``text`` exactly ``width`` cells wide: padded, or cut with an ellipsis."""
    if cell_len(text) <= width:
        return set_cell_size(text, width)
    return set_cell_size(text, width - 1) + "…"


def hit_line(hit: Mapping[str, Any], widths: Widths) -> Text:
    """One table line for a hit, never longer than ``widths.total`` cells."""
    severity = clean(hit.get("severity", ""))
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(_cell(local_time(hit.get("time")), _TIME_WIDTH) + _GAP)
    line.append(_cell(clean(hit.get("host", "")), widths.host) + _GAP)
    line.append(_cell(severity, widths.severity), style=severity_style(severity))
    line.append(_GAP + _cell(_kind(hit), widths.kind) + _GAP)
    line.append(_cell(clean(hit.get("source", "")), widths.source) + _GAP)
    message = clean(hit.get("message", ""))
    if cell_len(message) > widths.message:
        message = set_cell_size(message, widths.message - 1) + "…"
    line.append(message)
    line.rstrip()
    line.truncate(widths.total, overflow="ellipsis")  # a terminal too narrow for the columns
    return line


def header_line(widths: Widths) -> Text:
    """The table's column names, bold."""
    names = [
        ("time", _TIME_WIDTH),
        ("host", widths.host),
        ("severity", widths.severity),
        ("kind", widths.kind),
        ("source", widths.source),
    ]
    text = _GAP.join(_cell(name, width) for name, width in names) + _GAP + "message"
    line = Text(text, style="bold", no_wrap=True)
    line.truncate(widths.total, overflow="ellipsis")
    return line


def json_line(hit: Mapping[str, Any]) -> str:
    """A hit as one line of JSON, every character beyond ASCII escaped (no terminal control
    can ride in it)."""
    return json.dumps(hit, ensure_ascii=True, separators=(",", ":"))


def csv_lines(hits: Iterable[Mapping[str, Any]], columns: Sequence[str], header: bool) -> str:
    """CSV text (RFC 4180: quoted where needed, CRLF) of ``hits``' ``columns``; decoded
    fields and other structures as JSON text; ``fields.X`` reads one decoded field."""
    out = io.StringIO()
    writer = csv.writer(out)
    if header:
        writer.writerow(columns)
    for hit in hits:
        writer.writerow([_csv_value(hit, name) for name in columns])
    return out.getvalue()


def _csv_value(hit: Mapping[str, Any], name: str) -> str:
    if name in hit:
        value = hit[name]
    elif name.startswith("fields."):
        value = hit.get("fields", {})
        for part in name[len("fields.") :].split("."):
            value = value.get(part, "") if isinstance(value, dict) else ""
    else:
        value = ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return "" if value is None else str(value)


def footer(shown: int, answer: Mapping[str, Any], took_s: float) -> str:
    """``100 of 12,345 matches (0.041 s)``, and why the count or the list is cut short."""
    total = answer.get("total")
    counted = (
        f"{shown:,} of {total:,}" if isinstance(total, int) else f"{shown:,} of ? (not counted)"
    )
    notes = []
    if answer.get("timed_out"):
        notes.append("the query timed out: the list may be incomplete")
    if answer.get("capped"):
        notes.append("the result was capped")
    tail = "; " + "; ".join(notes) if notes else ""
    noun = "match" if total == 1 else "matches"
    return f"{counted} {noun} ({took_s:.3f} s){tail}"


def bar(count: int, largest: int, width: int) -> str:
    """A bar of ``count`` scaled so that ``largest`` fills ``width`` (a count above 0 shows
    at least one block)."""
    if largest <= 0 or count <= 0 or width <= 0:
        return ""
    return _BAR * max(1, round(count * width / largest))


def top_lines(answer: Mapping[str, Any], width: int) -> list[Text]:
    """``logfactory top``: value, count, share of the matches, a bar; then the rest."""
    buckets = [(clean(b["key"]), int(b["count"])) for b in answer["buckets"]]
    other, missing = int(answer.get("other", 0)), int(answer.get("missing", 0))
    matches = sum(c for _, c in buckets) + other + missing
    value_w = max([5, *(min(cell_len(v), 40) for v, _ in buckets)])
    count_w = max([5, *(len(f"{c:,}") for _, c in buckets)])
    room = max(10, width - value_w - count_w - len("100.0%") - 3 * len(_GAP))
    largest = max((c for _, c in buckets), default=0)
    lines = [
        Text(
            _GAP.join([_cell("value", value_w), "count".rjust(count_w), " share"]),
            style="bold",
        )
    ]
    for value, count in buckets:
        share = f"{100 * count / matches:5.1f}%" if matches else "    -"
        row = _GAP.join([_cell(value, value_w), f"{count:,}".rjust(count_w), share, ""])
        lines.append(Text(row + bar(count, largest, room), no_wrap=True))
    if other or missing:
        lines.append(
            Text(f"other values: {other:,}; without {clean(answer.get('field', 'it'))}: "
                 f"{missing:,}", style="dim")
        )  # fmt: skip
    return lines


def histogram_lines(answer: Mapping[str, Any], width: int) -> list[Text]:
    """``logfactory histogram``: one bar per bucket, labelled with its start in local time,
    the longest bar filling the width left after the label and the count."""
    buckets = [(b["key"], int(b["count"])) for b in answer["buckets"]]
    largest = max((c for _, c in buckets), default=0)
    count_w = max([1, *(len(f"{c:,}") for _, c in buckets)])
    label_w = len("2026-12-06 13:04:05")
    room = max(10, width - label_w - count_w - 2 * len(_GAP))
    lines = []
    for key, count in buckets:
        label = _cell(local_time(key, ms=False), label_w)
        text = _GAP.join([label, f"{count:,}".rjust(count_w), bar(count, largest, room)])
        lines.append(Text(text.rstrip(), no_wrap=True))
    return lines


def caret_lines(query: str, column: int | None, message: str) -> list[str]:
    """A bad query shown back with a caret under the (1-based) column the node named."""
    shown = clean(query)
    lines = []
    if column is not None and 1 <= column <= len(query) + 1:
        # control characters in the query are escaped, so the caret counts the escapes too
        lines = [f"  {shown}", "  " + " " * cell_len(clean(query[: column - 1])) + "^"]
    return [*lines, f"Error: {clean(message)}"]


def render(console: Console, lines: Iterable[Text | str]) -> None:
    """Print ``lines`` without wrapping, markup or highlighting."""
    for line in lines:
        console.print(
            line, markup=False, highlight=False, no_wrap=True, overflow="ellipsis", crop=True
        )
