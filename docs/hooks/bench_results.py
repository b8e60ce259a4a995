"""MkDocs hook: the benchmarks page's table of runs, made from ``bench/results/*.json`` at build
time, so the page always names the run and the machine behind the figures it shows.

The prose of ``docs/benchmarks.md`` explains the figures; the marker ``<!-- bench-results -->``
in it becomes a table with one row per result file: when it was measured, on which machine
(CPU, cores, memory, Python, reference loop) and its headline figures. A result file that
cannot be read is shown as such rather than failing the build: the page says what it knows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MARKER = "<!-- bench-results -->"
RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"

# benchmark -> (label, key path) of the figures a reader looks for first
HEADLINES: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "pipeline": [
        ("records/s", ("throughput_records_per_s",)),
        ("p99 ms", ("latency_p99_ms",)),
    ],
    "patterns": [
        ("GA", ("mean", "ours", "ga")),
        ("PA", ("mean", "ours", "pa")),
        ("x Drain3", ("mean", "throughput_ratio")),
    ],
    "collectors": [
        ("TCP lines/s", ("results", "syslog_tcp_lines_per_s")),
        ("UDP lines/s", ("results", "syslog_udp_lines_per_s")),
        ("file lines/s", ("results", "file_lines_per_s")),
        ("HTTP records/s", ("results", "http_ingest_records_per_s")),
    ],
    "kafka": [
        ("2 workers x", ("scaling_ratio",)),
        ("3-node p99 ms", ("latency_p99_ms",)),
    ],
    "resilience": [
        ("MB per SSE stream", ("sse", "with_64", "memory_per_subscriber_mb")),
        ("admitted of 200", ("sse", "burst", "admitted")),
    ],
    "security": [
        ("auth share of a request", ("auth_cost", "auth_share_worst")),
        ("rate under abuse / unloaded", ("abuse", "ratio")),
    ],
    "store": [
        ("ingest records/s", ("ingest", "embedded", "rate_steady_per_s")),
        ("OpenSearch docs/s", ("ingest", "opensearch", "rate_steady_per_s")),
        ("rare word p95 ms", ("queries", "rare_word", "p95_ms")),
        ("top-10 hosts p95 ms", ("queries", "top10_hosts_7d", "p95_ms")),
        ("disk x raw", ("disk", "ratio_to_raw")),
    ],
}


def _get(data: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _number(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if value >= 1000 else f"{value:g}"
    return str(value)


def _row(path: Path) -> str:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return f"| `{path.name}` | cannot be read: {exc} | | |"
    machine = data.get("machine") or {}
    where = (
        f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, "
        f"{machine.get('memory_gib', '?')} GiB, Python {machine.get('python', '?')}, "
        f"reference loop {machine.get('reference_loop_ms', '?')} ms"
    )
    name = str(data.get("benchmark", path.stem))
    figures = "; ".join(
        f"{label} {_number(_get(data, key))}" for label, key in HEADLINES.get(name, [])
    )
    return f"| `{path.name}` | {data.get('measured_at', '?')} | {where} | {figures or '-'} |"


def results_table(results: Path = RESULTS) -> str:
    """The Markdown table of every result file in ``results``."""
    rows = [_row(p) for p in sorted(results.glob("*.json"))]
    head = "| result | measured (UTC) | machine | headline figures |\n|---|---|---|---|"
    return "\n".join([head, *rows]) if rows else "No results yet: run `make bench`."


def on_page_markdown(markdown: str, **_: Any) -> str:
    """Replace the marker with the table (pages without it are left alone)."""
    return markdown.replace(MARKER, results_table()) if MARKER in markdown else markdown
