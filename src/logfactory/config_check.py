"""Cross-field checks that a schema cannot express, each pointing at the offending key."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from logfactory.config import (
    Config,
    Match,
    SourceConfig,
    parse_duration,
    parse_size,
    snmp_engine_id,
)
from logfactory.event import BUILTIN_TYPES

__all__ = ["check_config"]

Problem = tuple[tuple[str | int, ...], str]


def _regex(path: tuple[str | int, ...], pattern: str | None, out: list[Problem]) -> None:
    if pattern is None:
        return
    try:
        re.compile(pattern)
    except re.error as exc:
        out.append((path, f"invalid regular expression {pattern!r}: {exc}"))


def _match(
    path: tuple[str | int, ...], match: Match, workshops: set[str], out: list[Problem]
) -> None:
    _regex((*path, "message"), match.message, out)
    names = [match.workshop] if isinstance(match.workshop, str) else match.workshop or []
    for name in names:
        if name not in workshops:
            out.append(
                ((*path, "workshop"), f"unknown workshop {name!r}; defined: {sorted(workshops)}")
            )
    for key, cond in match.fields.items():
        if not isinstance(cond, str):
            _regex((*path, "fields", key, "regex"), cond.regex, out)


def _socket_source(i: int, src: SourceConfig, out: list[Problem]) -> None:
    """syslog and raw: something to listen on, TLS keys that go together, sane sizes."""
    if not src.listen and not src.tls_listen:
        out.append(
            (
                ("sources", i, "type"),
                f"a {src.type} source needs 'listen: HOST:PORT' (or tls_listen)",
            )
        )
    if src.tls_listen and not re.fullmatch(r"\[?[\w.:\-]*\]?:\d{1,5}", src.tls_listen):
        out.append((("sources", i, "tls_listen"), f"{src.tls_listen!r} is not HOST:PORT"))
    if (src.tls_cert is None) != (src.tls_key is None):
        key = "tls_key" if src.tls_key is None else "tls_cert"
        out.append((("sources", i, key), "tls_cert and tls_key must be given together"))
    if src.tls_verify_client and src.tls_ca is None:
        out.append((("sources", i, "tls_ca"), "tls_verify_client needs tls_ca (the clients' CA)"))
    if src.max_frame_bytes < 1:
        out.append((("sources", i, "max_frame_bytes"), "must be at least 1"))
    if src.udp_rcvbuf < 1024:
        out.append((("sources", i, "udp_rcvbuf"), "must be at least 1024 bytes"))


def _sql_source(i: int, src: SourceConfig, out: list[Problem]) -> None:
    from logfactory.collect.sources.sql import parse_connection, prepare_query

    for key in ("connection", "query", "tracking_column"):
        if not getattr(src, key):
            out.append((("sources", i, key), f"a sql source needs '{key}'"))
    for key, check in (("connection", parse_connection), ("query", prepare_query)):
        value = getattr(src, key)
        if value:
            try:
                check(value)
            except ValueError as exc:
                out.append((("sources", i, key), str(exc)))
    try:
        parse_duration(src.interval)
    except ValueError as exc:
        out.append((("sources", i, "interval"), str(exc)))
    if src.max_rows < 1:
        out.append((("sources", i, "max_rows"), "max_rows must be at least 1"))


def _kafka_source(i: int, src: SourceConfig, out: list[Problem]) -> None:
    if not src.kafka.get("bootstrap.servers"):
        need = "a kafka source needs 'kafka: {bootstrap.servers: HOST:PORT,...}'"
        out.append((("sources", i, "kafka"), need))
    if not src.topics:
        out.append((("sources", i, "topics"), "a kafka source needs 'topics': a list of topics"))
    if src.host_from == "field:":
        out.append((("sources", i, "host_from"), "write host_from: field:NAME"))


def _snmp_source(i: int, src: SourceConfig, out: list[Problem]) -> None:
    if not src.listen:
        out.append((("sources", i, "type"), "an snmp source needs 'listen: HOST:PORT' (UDP)"))
    if not src.communities and not src.v3_users:
        out.append(
            (
                ("sources", i, "type"),
                "an snmp source without 'communities' or 'v3_users' accepts nothing",
            )
        )
    if src.engine_id is not None:
        try:
            snmp_engine_id(src.engine_id)
        except ValueError as exc:
            out.append((("sources", i, "engine_id"), str(exc)))
    seen: set[tuple[str, str | None]] = set()
    for j, user in enumerate(src.v3_users):
        key = (user.user, user.engine_id and snmp_engine_id(user.engine_id).hex())
        if key in seen:
            out.append(
                (
                    ("sources", i, "v3_users", j, "user"),
                    f"user {user.user!r} is listed twice for the same engine_id",
                )
            )
        seen.add(key)


def check_config(config: Config) -> list[Problem]:
    out: list[Problem] = []
    try:
        ZoneInfo(config.node.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        out.append(
            (
                ("node", "timezone"),
                f"unknown time zone {config.node.timezone!r}; "
                "write an IANA name such as UTC or Europe/Berlin",
            )
        )
    retention = config.bus.retention
    for key, value, parse in (
        ("max_age", retention.max_age, parse_duration),
        ("max_bytes_per_partition", retention.max_bytes_per_partition, parse_size),
    ):
        if value is not None:
            try:
                parse(value)
            except ValueError as exc:
                out.append((("bus", "retention", key), str(exc)))
    if config.bus.type == "kafka" and not config.bus.kafka.get("bootstrap.servers"):
        out.append(
            (("bus", "type"), "a kafka bus needs 'kafka: {bootstrap.servers: HOST:PORT,...}'")
        )
    if config.bus.type == "http" and not config.bus.http.url.startswith(("http://", "https://")):
        out.append(
            (
                ("bus", "type"),
                "an http bus ships to a central node: give 'http: {url: "
                "https://CENTRAL:8080/api/v1/ingest, token: ...}'",
            )
        )
    if (config.http.tls_cert is None) != (config.http.tls_key is None):
        key = "tls_key" if config.http.tls_key is None else "tls_cert"
        out.append((("http", key), "tls_cert and tls_key must be given together"))
    if config.bus.partitions < 1:
        out.append((("bus", "partitions"), "partitions must be at least 1"))
    workshops = set(config.workshops)
    for name, ws in config.workshops.items():
        for prog, target in ws.delegate.items():
            if target not in workshops:
                out.append(
                    (
                        ("workshops", name, "delegate", prog),
                        f"delegates to unknown workshop {target!r}",
                    )
                )
        if ws.multiline is not None:
            _regex(("workshops", name, "multiline", "start"), ws.multiline.start, out)
            _regex(("workshops", name, "multiline", "continuation"), ws.multiline.continuation, out)
        if ws.format == "kv" and not ws.fields:
            out.append(
                (
                    ("workshops", name, "fields"),
                    "a kv workshop needs 'fields': the names of the delimited columns",
                )
            )
    for tag, target in config.factory.routes.items():
        if target not in workshops:
            out.append((("factory", "routes", tag), f"routes to unknown workshop {target!r}"))
    for i, src in enumerate(config.sources):
        if src.type == "file" and not src.paths:
            out.append((("sources", i, "paths"), "a file source needs 'paths': a list of globs"))
        if src.type == "file":
            try:
                parse_duration(src.idle_timeout)
            except ValueError as exc:
                out.append((("sources", i, "idle_timeout"), str(exc)))
        if src.type == "http":
            try:
                if parse_size(src.max_body_bytes) < 1:
                    out.append((("sources", i, "max_body_bytes"), "must be at least 1 byte"))
            except ValueError as exc:
                out.append((("sources", i, "max_body_bytes"), str(exc)))
        if src.type in ("syslog", "raw"):
            _socket_source(i, src, out)
        if src.type == "sql":
            _sql_source(i, src, out)
        if src.type == "kafka":
            _kafka_source(i, src, out)
        if src.type == "snmp":
            _snmp_source(i, src, out)
        if src.listen and not re.fullmatch(r"\[?[\w.:\-]*\]?:\d{1,5}", src.listen):
            out.append((("sources", i, "listen"), f"{src.listen!r} is not HOST:PORT"))
    types = set(BUILTIN_TYPES) | {t.name for t in config.event_types}
    for i, m in enumerate(config.mappings):
        _match(("mappings", i, "when"), m.when, workshops, out)
        if m.type not in types:
            out.append(
                (
                    ("mappings", i, "type"),
                    f"unknown event type {m.type!r}; add it under event_types or use one of "
                    f"{sorted(types)}",
                )
            )
    for i, a in enumerate(config.alerts):
        _match(("alerts", i, "when"), a.when, workshops, out)
    for i, r in enumerate(config.rules):
        _match(("rules", i, "when"), r.when, workshops, out)
        for key in ("window", "suppress"):
            try:
                parse_duration(getattr(r, key))
            except ValueError as exc:
                out.append((("rules", i, key), str(exc)))
        if r.threshold < 1:
            out.append((("rules", i, "threshold"), "threshold must be at least 1"))
        if r.type not in types:
            out.append((("rules", i, "type"), f"unknown event type {r.type!r}"))
    return out
