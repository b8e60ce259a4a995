"""The lines a node prints when it starts: every source and what it follows.

Why: a node that starts without a word about a source (a glob that matches nothing, a source
the configuration forgot, a port other than the one the user meant) makes a newcomer wait for
records that cannot come. Each source gets one line with what it reads: a file source its globs
(and, when they match nothing yet, a warning), a network source the addresses it really
listens on, HTTP ingest its URL, SQL its database (without secrets), Kafka its topics, the demo
feed its rate; a configuration without sources says what the node can still do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from logfactory.collect.sources.base import Source
from logfactory.config import Config, SocketSourceConfig, SourceConfig
from logfactory.config.units import duration_text

__all__ = ["banner_lines", "describe_source", "redact_connection"]

LABEL = 12  # the width of the first column, as in "factory     pid 1234"

_SECRET_KEY = re.compile(r"pwd|pass|secret|token|key", re.I)
_URL_PASSWORD = re.compile(r"(//[^:/@]+:)[^@]*@")


def _row(label: str, text: str) -> str:
    return f"{label:<{LABEL}}{text}"


def redact_connection(text: str) -> str:
    """An ODBC connection string or URL without its password (``PWD=...``, ``user:pw@``)."""
    if "://" in text:
        return _URL_PASSWORD.sub(r"\1***@", text)
    parts = [p for p in text.split(";") if p.strip()]
    return ";".join(
        f"{p.split('=', 1)[0]}=***" if _SECRET_KEY.search(p.split("=", 1)[0]) else p for p in parts
    )


def _addresses(src: Source | None) -> list[str]:
    """``["udp 127.0.0.1:5514", ...]`` from a source's ``addresses()`` (its kind dropped)."""
    addresses = getattr(src, "addresses", None)
    if not callable(addresses):
        return []
    return [str(a).split(" ", 1)[-1] for a in addresses()]


def describe_source(sc: SourceConfig, src: Source | None, ingest_url: str | None) -> str:
    """What one source follows, e.g. ``udp 127.0.0.1:5514, tcp 127.0.0.1:5514``."""
    if sc.type == "file":
        return ", ".join(sc.paths) + (" (and their .gz)" if sc.read_gzip else "")
    if sc.type in ("syslog", "raw", "relp", "snmp"):
        bound = _addresses(src)
        tls = sc.tls_listen if isinstance(sc, SocketSourceConfig) else None
        return ", ".join(bound) if bound else f"{sc.listen or tls}"
    if sc.type == "http":
        if ingest_url is None:
            return "not served: this process runs no HTTP API (http.enabled is false)"
        return f"POST {ingest_url}" + (" (bearer token required)" if sc.token else "")
    if sc.type == "sql":
        return f"{redact_connection(sc.connection or '?')}, every {duration_text(sc.interval)}"
    if sc.type == "kafka":
        servers = sc.kafka.get("bootstrap.servers", "?")
        return f"topics {', '.join(sc.topics)} on {servers}"
    if sc.type == "demo":
        return f"{sc.rate:g} lines/s from {sc.hosts} compute nodes (built-in demo feed)"
    return sc.type


def banner_lines(
    config: Config,
    sources: Mapping[int, Source],
    *,
    ingest_url: str | None,
    collectors: bool,
    idle: Mapping[int, str] | None = None,
) -> list[str]:
    """One ``source`` row per configured source (``sources``: the running ones by their index
    in ``config.sources``), a ``warning`` row after a source that reads nothing (``idle``), and
    a row saying so when there is nothing to collect. ``collectors`` False (``serve``): only
    the HTTP ingest sources, which the API itself serves."""
    rows: list[str] = []
    idle = idle or {}
    for i, sc in enumerate(config.sources):
        if not collectors and sc.type != "http":
            continue
        name = sc.name or sc.tag or sc.type
        what = describe_source(sc, sources.get(i), ingest_url)
        rows.append(_row("source", f"{name} ({sc.type}): {what}"))
        if i in idle:
            rows.append(_row("warning", idle[i]))
    if collectors and not config.sources:
        if ingest_url is not None:
            what = f"records come only from POST {ingest_url}"
        else:
            what = "nothing is collected"
        rows.append(
            _row("sources", f"none in {config.path}: {what}; add some under `sources:` "
                 "(docs/configuration.md: \"Pointing it at real logs\")")
        )  # fmt: skip
    return rows
