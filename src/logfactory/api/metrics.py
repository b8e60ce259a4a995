"""The node's numbers: every process's counters merged, the bus's depth and lag, and the same
numbers as Prometheus metrics.

Counters come from the per-process stats files (see :mod:`logfactory.stats`) plus the live
registry of the API's own process; they are summed over processes because a site asks "how
many records did the decode stage see", not "which worker saw them". Dead processes still
count: their counters are work that was done.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from logfactory.bus.base import Bus, GroupLag
from logfactory.stats import COUNTER_NAMES, StatsRegistry, read_all_stats

__all__ = [
    "LIMITS",
    "STAGES",
    "NodeCollector",
    "ProcessInfo",
    "StatsView",
    "bus_overview",
    "merge_snapshots",
    "node_stats",
    "process_json",
    "read_snapshots",
    "safe_bus_overview",
]

log = logging.getLogger(__name__)

STAGES = ("intake", "sort", "decode", "filter", "process", "package")
SOURCE_COUNTERS = ("received", "bytes", "rejected")


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    name: str
    pid: int
    alive: bool
    age_s: float
    """Seconds since the process last wrote its stats."""
    started: float
    written: float
    problems: dict[str, str] = field(default_factory=dict)
    """What the process itself reports as wrong (``StatsRegistry.problem``), by name."""


@dataclass(slots=True)
class StatsView:
    """Counters summed over processes, grouped the way the API and the console show them."""

    stages: dict[str, dict[str, int]] = field(default_factory=dict)
    sources: dict[str, dict[str, int]] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)
    deadletter: int = 0
    other: dict[str, dict[str, int]] = field(default_factory=dict)
    gauges: dict[str, float] = field(default_factory=dict)
    processes: list[ProcessInfo] = field(default_factory=list)


def read_snapshots(stats_dir: Path, own: StatsRegistry | None = None) -> list[dict[str, Any]]:
    """Every process's snapshot; ``own`` (this process) is taken live instead of from its file."""
    snaps = read_all_stats(stats_dir)
    if own is None:
        return snaps
    live = own.snapshot()
    live["alive"] = True
    return [s for s in snaps if s.get("process") != own.process] + [live]


def node_stats(stats_dir: Path, own: StatsRegistry) -> StatsView:
    """The node's numbers now: every process's snapshot (``own`` live) merged."""
    return merge_snapshots(read_snapshots(stats_dir, own))


def process_json(proc: ProcessInfo) -> dict[str, Any]:
    """A process as the API shows it (``written`` is internal: ``age_s`` says it)."""
    out = asdict(proc)
    out.pop("written")
    return out


def _num(value: object) -> float:
    """A number from a stats file, 0 for anything else (a torn or foreign file never crashes)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _problems(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def _add(target: dict[str, int], counters: dict[str, Any]) -> None:
    for name, value in counters.items():
        if isinstance(value, int | float):
            target[name] = target.get(name, 0) + int(value)


def _source_gauge(view: StatsView, gname: str, value: float) -> None:
    """``source:<name>:lag_<unit>`` (see ``collect.sources.base.Lagging``) joins that source's
    counters as ``lag_<unit>``, so the API shows a source's backlog next to its rates."""
    kind, _, rest = gname.partition(":")
    label, _, metric = rest.rpartition(":")
    if kind == "source" and label and metric.startswith("lag_"):
        counters = view.sources.setdefault(label, dict.fromkeys(SOURCE_COUNTERS, 0))
        counters[metric] = counters.get(metric, 0) + int(value)


def merge_snapshots(snaps: Iterable[dict[str, Any]], now: float | None = None) -> StatsView:
    """Sum counters by group over processes; unknown groups land in ``other``, never lost."""
    now = time.time() if now is None else now
    view = StatsView(stages={s: dict.fromkeys(COUNTER_NAMES, 0) for s in STAGES})
    for snap in snaps:
        name = str(snap.get("process", "?"))
        written = _num(snap.get("written"))
        view.processes.append(
            ProcessInfo(
                name=name,
                pid=int(_num(snap.get("pid"))),
                alive=bool(snap.get("alive", False)),
                age_s=round(max(0.0, now - written), 3),
                started=_num(snap.get("started")),
                written=written,
                problems=_problems(snap.get("problems")),
            )
        )
        counters = snap.get("counters", {})
        if not isinstance(counters, dict):
            continue
        for group, values in counters.items():
            if not isinstance(values, dict):
                continue
            kind, _, label = str(group).partition(":")
            if kind == "stage" and label:
                _add(view.stages.setdefault(label, dict.fromkeys(COUNTER_NAMES, 0)), values)
            elif kind == "source" and label:
                _add(view.sources.setdefault(label, dict.fromkeys(SOURCE_COUNTERS, 0)), values)
            elif kind == "events" and label:
                view.events[label] = view.events.get(label, 0) + int(_num(values.get("sent")))
            elif group == "deadletter":
                view.deadletter += int(_num(values.get("sent")))
            else:
                _add(view.other.setdefault(str(group), {}), values)
        gauges = snap.get("gauges", {})
        if isinstance(gauges, dict):
            for gname, value in gauges.items():
                if isinstance(value, int | float):
                    view.gauges[f"{name}/{gname}"] = float(value)
                    _source_gauge(view, str(gname), value)
    view.processes.sort(key=lambda p: p.name)
    return view


STORE_COUNTERS = ("received", "stored", "duplicates", "deadletters", "commits", "errors")
STORE_GAUGES = {
    "docs": "Records the log store holds.",
    "bytes": "Bytes the log store's engine uses on disk.",
    "pending": "Records the store role has written and its engine not yet committed.",
    "lag": "Records on the bus the store role has not yet committed.",
}


def _store_metrics(view: StatsView) -> Iterator[Metric]:
    """The store role's counters (group ``store``) and gauges (``store.*``), and every live
    process's problems: a paused store says so here as well as in health."""
    records = CounterMetricFamily(
        "logfactory_store_records",
        "Records the store role received from the bus, stored (new), found already stored "
        "(duplicates), sent to logs.deadletter; its engine commits and errors.",
        labels=["outcome"],
    )
    counters = view.other.get("store", {})
    for outcome in STORE_COUNTERS:
        records.add_metric([outcome], counters.get(outcome, 0))
    yield records
    # a live store's only: a store that was restarted leaves its last file behind
    live = {p.name for p in view.processes if p.alive}
    for name, help_text in STORE_GAUGES.items():
        values = [
            v
            for k, v in view.gauges.items()
            if k.endswith(f"/store.{name}") and k.rpartition("/")[0] in live
        ]
        if values:
            yield GaugeMetricFamily(f"logfactory_store_{name}", help_text, value=sum(values))
    problem = GaugeMetricFamily(
        "logfactory_process_problem",
        "1 for each problem a live process reports (the text is in /api/v1/health).",
        labels=["process", "problem"],
    )
    for proc in view.processes:
        if proc.alive:
            for name in sorted(proc.problems):
                problem.add_metric([proc.name, name], 1.0)
    yield problem


def _spool_metrics(view: StatsView) -> Iterator[Metric]:
    """The collector's disk spool (``collect.spool``): records that went to disk while the bus
    was away, resent since, damaged files set aside; and what it holds now."""
    counters = view.other.get("spool", {})
    spool = CounterMetricFamily(
        "logfactory_spool_records",
        "Records the collector spool wrote to disk, resent to the bus, or files quarantined.",
        labels=["outcome"],
    )
    for outcome in ("spooled", "resent", "quarantined"):
        spool.add_metric([outcome], counters.get(outcome, 0))
    yield spool
    for unit in ("records", "bytes"):
        held = sum(v for k, v in view.gauges.items() if k.endswith(f"/spool.{unit}"))
        yield GaugeMetricFamily(
            f"logfactory_spool_held_{unit}",
            f"{unit.capitalize()} waiting in the spool.",
            value=held,
        )


CONNECTION_OUTCOMES = ("refused", "evicted", "timed_out")


def _connection_metrics(view: StatsView) -> Iterator[Metric]:
    """TCP connections a listener closed (``collect.connections``): refused at its cap, evicted
    (had sent nothing; made room for a new one) or timed out (silent too long). ``listener`` is
    the stats group: ``source:<name>`` or ``api``."""
    family = CounterMetricFamily(
        "logfactory_connections_closed",
        "TCP connections a listener refused at max_connections, evicted to make room (they "
        "had sent nothing) or closed after connection_idle_timeout.",
        labels=["listener", "outcome"],
    )
    groups = [(f"source:{name}", c) for name, c in view.sources.items()]
    groups.append(("api", view.other.get("api", {})))
    for listener, counters in groups:
        if any(f"connections_{o}" in counters for o in CONNECTION_OUTCOMES):
            for outcome in CONNECTION_OUTCOMES:
                family.add_metric([listener, outcome], counters.get(f"connections_{outcome}", 0))
    yield family


def _refusal_metrics(view: StatsView) -> Iterator[Metric]:
    """Requests the API refused for their form (``api.safety``, and any other ``refused_<reason>``
    counter of the group ``api``): a Host not served, a CORS preflight from an unlisted origin,
    a body that is not JSON on a JSON route."""
    family = CounterMetricFamily(
        "logfactory_api_refused",
        "HTTP requests the API refused, by reason (host: not in http.allowed_hosts; cors: a "
        "preflight from an origin not in http.cors_origins; content_type: not JSON on a JSON "
        "route).",
        labels=["reason"],
    )
    for name, value in sorted(view.other.get("api", {}).items()):
        if name.startswith("refused_"):
            family.add_metric([name.removeprefix("refused_")], value)
    yield family


LIMITS = (
    "login",
    "login_busy",
    "query",
    "sse_total",
    "sse_client",
    "sse_credential",
    "header_bytes",
)
"""Every limit against abuse that refuses requests (docs/limits.md has the table): each is
the API's counter ``limited_<limit>``, always exported (0 until it is reached), so that an
alert rule on it needs no request to have been refused first."""


def _limit_metrics(view: StatsView) -> Iterator[Metric]:
    """Requests the API refused at a limit against abuse, and login lock-outs begun."""
    counters = view.other.get("api", {})
    limited = CounterMetricFamily(
        "logfactory_api_limited",
        "Requests the API refused at a limit against abuse: login lock-out, logins in flight, "
        "query rate, SSE "
        "streams (in total, per client address, per credential), request header size.",
        labels=["limit"],
    )
    for limit in LIMITS:
        limited.add_metric([limit], counters.get(f"limited_{limit}", 0))
    yield limited
    lockouts = CounterMetricFamily(
        "logfactory_login_lockouts",
        "Login lock-outs begun, of a user name or of a client address.",
        labels=["kind"],
    )
    for kind in ("user", "address"):
        lockouts.add_metric([kind], counters.get(f"lockouts_{kind}", 0))
    yield lockouts


def _tls_metrics(view: StatsView) -> Iterator[Metric]:
    """Connections to the HTTPS API that ended before their TLS handshake finished
    (``logfactory.node_tls``): no or a refused client certificate, not TLS at all, too slow,
    or hung up. Only where the API serves HTTPS."""
    api = view.other.get("api", {})
    if "tls_handshakes_failed" in api:
        family = CounterMetricFamily(
            "logfactory_tls_handshakes_failed",
            "Connections to the HTTPS API that ended before their TLS handshake finished (no "
            "or a refused client certificate, not TLS, slower than connection_idle_timeout).",
            labels=["listener"],
        )
        family.add_metric(["api"], api["tls_handshakes_failed"])
        yield family


def bus_overview(bus: Bus) -> dict[str, Any]:
    """Topics with partitions and message counts (from watermarks) and lag per group and topic.

    ``messages`` is how many were ever written, ``retained`` how many are still stored.
    A bus offering ``lag(group)`` (the local bus) answers lag itself; otherwise it is computed
    from watermarks and committed offsets, which every bus has.
    """
    topics: dict[str, dict[str, int]] = {}
    marks_by_topic: dict[str, dict[int, tuple[int, int]]] = {}
    for topic, partitions in sorted(bus.topics().items()):
        marks = bus.watermarks(topic)
        marks_by_topic[topic] = marks
        topics[topic] = {
            "partitions": partitions,
            "messages": sum(high for _low, high in marks.values()),
            "retained": sum(high - low for low, high in marks.values()),
        }
    lag_fn: Callable[[str], dict[str, int]] | None = bus.lag if isinstance(bus, GroupLag) else None
    lag: dict[str, dict[str, int]] = {}
    for group in bus.groups():
        if lag_fn is not None:
            lag[group] = dict(sorted(lag_fn(group).items()))
            continue
        per_topic: dict[str, int] = {}
        for topic, marks in marks_by_topic.items():
            done = bus.committed(group, topic)
            if done:
                per_topic[topic] = sum(
                    max(0, high - max(done.get(p, low), low)) for p, (low, high) in marks.items()
                )
        lag[group] = per_topic
    return {"topics": topics, "lag": lag}


def safe_bus_overview(bus: Bus) -> dict[str, Any] | None:
    """:func:`bus_overview`, or None (logged) when the bus fails to answer."""
    try:
        return bus_overview(bus)
    except Exception:
        log.exception("bus overview failed")
        return None


class NodeCollector(Collector):
    """Prometheus view of the merged stats, computed at scrape time (no second bookkeeping)."""

    def __init__(
        self,
        stats: Callable[[], StatsView],
        bus: Callable[[], dict[str, Any] | None],
        started: float,
        stale_after_s: float = 5.0,
    ) -> None:
        self._stats = stats
        self._bus = bus
        self._started = started
        self._stale_after_s = stale_after_s

    def collect(self) -> Iterator[Metric]:
        view = self._stats()
        stage = CounterMetricFamily(
            "logfactory_stage_records",
            "Records per factory stage and outcome, summed over processes.",
            labels=["stage", "outcome"],
        )
        for name, counters in view.stages.items():
            for outcome, value in counters.items():
                stage.add_metric([name, outcome], value)
        yield stage
        source = CounterMetricFamily(
            "logfactory_source_records",
            "Records per source: received, or rejected as malformed.",
            labels=["source", "outcome"],
        )
        source_bytes = CounterMetricFamily(
            "logfactory_source_bytes", "Bytes received per source.", labels=["source"]
        )
        source_lag = GaugeMetricFamily(
            "logfactory_source_lag",
            "How far a source is behind its input: bytes of followed files not yet read, or "
            "records accepted (network, input topic) and not yet on the bus.",
            labels=["source", "unit"],
        )
        for name, counters in view.sources.items():
            source.add_metric([name, "received"], counters.get("received", 0))
            source.add_metric([name, "rejected"], counters.get("rejected", 0))
            if "dropped" in counters:  # UDP: datagrams the kernel dropped before we read them
                source.add_metric([name, "dropped"], counters["dropped"])
            source_bytes.add_metric([name], counters.get("bytes", 0))
            for metric, value in counters.items():
                if metric.startswith("lag_"):
                    source_lag.add_metric([name, metric[4:]], value)
        yield source
        yield source_bytes
        yield source_lag
        yield from _connection_metrics(view)
        yield from _refusal_metrics(view)
        yield from _limit_metrics(view)
        yield from _tls_metrics(view)
        yield from _spool_metrics(view)
        yield from _store_metrics(view)
        events = CounterMetricFamily(
            "logfactory_events", "Events published per type.", labels=["type"]
        )
        for name, value in sorted(view.events.items()):
            events.add_metric([name], value)
        yield events
        yield CounterMetricFamily(
            "logfactory_deadletter", "Records sent to logs.deadletter.", value=view.deadletter
        )
        up = GaugeMetricFamily(
            "logfactory_process_up",
            "1 if the process's pid runs and its stats are fresh.",
            labels=["process"],
        )
        for proc in view.processes:
            up.add_metric(
                [proc.name], 1.0 if proc.alive and proc.age_s < self._stale_after_s else 0.0
            )
        yield up
        overview = self._bus()
        if overview is not None:
            messages = CounterMetricFamily(
                "logfactory_bus_messages", "Messages ever written per topic.", labels=["topic"]
            )
            for topic, info in overview["topics"].items():
                messages.add_metric([topic], info["messages"])
            yield messages
            lag = GaugeMetricFamily(
                "logfactory_bus_lag",
                "Messages not yet committed per consumer group and topic.",
                labels=["group", "topic"],
            )
            for group, per_topic in overview["lag"].items():
                for topic, value in per_topic.items():
                    lag.add_metric([group, topic], value)
            yield lag
        yield GaugeMetricFamily(
            "logfactory_uptime_seconds",
            "Seconds since the node's API started.",
            value=max(0.0, time.time() - self._started),
        )
