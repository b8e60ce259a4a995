"""Cross-field checks that a schema cannot express, each pointing at the offending key."""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from logfactory.config import (
    Config,
    Match,
    SourceConfig,
    bare_port,
    key_path,
    parse_duration,
    parse_size,
    snmp_engine_id,
)
from logfactory.event import BUILTIN_TYPES

__all__ = ["check_config"]

Problem = tuple[tuple[str | int, ...], str]
_HOST_PORT = re.compile(r"(\[?[\w.:\-]*\]?):([0-9]+)")


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


def _connections(
    path: tuple[str | int, ...], cap: int | None, idle: str | float, out: list[Problem]
) -> None:
    """``max_connections`` and ``connection_idle_timeout`` of a TCP listener."""
    if cap is not None and cap < 1:
        out.append(((*path, "max_connections"), "must be at least 1"))
    try:
        if parse_duration(idle) < 0:
            out.append(((*path, "connection_idle_timeout"), "must be 0 (never) or more"))
    except ValueError as exc:
        out.append(((*path, "connection_idle_timeout"), str(exc)))


def _socket_source(i: int, src: SourceConfig, out: list[Problem]) -> None:
    """syslog and raw: something to listen on, TLS keys that go together, sane sizes."""
    if not src.listen and not src.tls_listen:
        out.append(
            (
                ("sources", i, "type"),
                f"a {src.type} source needs 'listen: HOST:PORT' (or tls_listen)",
            )
        )
    if (src.tls_cert is None) != (src.tls_key is None):
        key = "tls_key" if src.tls_key is None else "tls_cert"
        out.append((("sources", i, key), "tls_cert and tls_key must be given together"))
    if src.tls_verify_client and src.tls_ca is None:
        out.append((("sources", i, "tls_ca"), "tls_verify_client needs tls_ca (the clients' CA)"))
    if src.max_frame_bytes < 1:
        out.append((("sources", i, "max_frame_bytes"), "must be at least 1"))
    if src.udp_rcvbuf < 1024:
        out.append((("sources", i, "udp_rcvbuf"), "must be at least 1024 bytes"))
    _connections(("sources", i), src.max_connections, src.connection_idle_timeout, out)


def _relp_source(i: int, src: SourceConfig, out: list[Problem]) -> None:
    """relp: one TCP listener (no UDP, no TLS yet), sane sizes, the connection bounds."""
    if not src.listen:
        out.append((("sources", i, "listen"), "a relp source needs 'listen: HOST:PORT' (TCP)"))
    if src.tls_listen is not None:
        out.append((("sources", i, "tls_listen"), "a relp source has no TLS listener yet"))
    if src.max_frame_bytes < 1:
        out.append((("sources", i, "max_frame_bytes"), "must be at least 1"))
    _connections(("sources", i), src.max_connections, src.connection_idle_timeout, out)


def _names(config: Config, out: list[Problem]) -> None:
    """A source's name keys its counters, saved positions and SNMP engine: one name, one source."""
    first: dict[str, int] = {}
    for i, src in enumerate(config.sources):
        if src.name is None:
            continue
        if src.name in first:
            out.append(
                (
                    ("sources", i, "name"),
                    f"{src.name!r} is already the name of sources[{first[src.name]}]; "
                    "give each source a name of its own",
                )
            )
        first.setdefault(src.name, i)


def _address(path: tuple[str | int, ...], text: str, out: list[Problem]) -> tuple[str, int] | None:
    """``HOST:PORT`` -> (host, port) as the listeners bind it (an empty host is every
    interface), or None with the problem in ``out``."""
    if text.isdigit() and text.isascii():
        out.append((path, bare_port(text)))
        return None
    m = _HOST_PORT.fullmatch(text)
    if m is None:
        out.append((path, f"{text!r} is not HOST:PORT, e.g. 127.0.0.1:5514"))
        return None
    port = int(m.group(2))
    if not 1 <= port <= 65535:
        out.append((path, f"port {port} of {text!r} is outside 1-65535"))
        return None
    return m.group(1).strip("[]") or "0.0.0.0", port


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address("127.0.0.1" if host.lower() == "localhost" else host)
    except ValueError:
        return None  # a host name: compared by its spelling only (no DNS in a config check)


def _overlap(a: str, b: str, protocol: str) -> bool:
    """Whether binding ``a`` and ``b`` on one port and protocol fails (Linux, as measured):
    the same address, or the wildcard of a family and any address of it; a UDP socket on
    ``::`` is dual-stack and takes IPv4 too (TCP listeners are IPv6-only there)."""
    x, y = _ip(a), _ip(b)
    if x is None or y is None:
        return a.lower() == b.lower()
    if x == y:
        return True
    if x.version == y.version:
        return x.is_unspecified or y.is_unspecified
    six = x if x.version == 6 else y
    return protocol == "udp" and six.is_unspecified


class _Bound(NamedTuple):
    path: tuple[str | int, ...]
    protocol: str
    host: str
    port: int
    text: str  # as written in the file


def _listeners(config: Config, out: list[Problem]) -> None:
    """Every address is valid, and no two listeners of this node (sources, the API) need the
    same address and protocol: the second bind would fail when the node starts."""
    wanted: list[tuple[tuple[str | int, ...], str, tuple[str, ...]]] = []
    api = config.http.enabled and (
        config.bus.type != "http" or any(src.type == "http" for src in config.sources)
    )
    wanted.append((("http", "listen"), config.http.listen, ("tcp",) if api else ()))
    for i, src in enumerate(config.sources):
        lines = src.type in ("syslog", "raw")  # snmp is UDP; other types ignore these keys
        if src.listen is not None:
            protocols: tuple[str, ...] = tuple(dict.fromkeys(src.protocols)) if lines else ()
            if src.type == "snmp":
                protocols = ("udp",)
            if src.type == "relp":
                protocols = ("tcp",)
            wanted.append((("sources", i, "listen"), src.listen, protocols))
        if src.tls_listen is not None:
            wanted.append((("sources", i, "tls_listen"), src.tls_listen, ("tcp",) * lines))
    bound: list[_Bound] = []
    for path, text, protocols in wanted:
        address = _address(path, text, out)
        if address is None:
            continue
        host, port = address
        for protocol in protocols:
            clash = next(
                (b for b in bound if (b.protocol, b.port) == (protocol, port)
                 and _overlap(b.host, host, protocol)),
                None,
            )  # fmt: skip
            if clash is None:
                bound.append(_Bound(path, protocol, host, port, text))
                continue
            same = "is" if clash.text == text else f"overlaps {protocol} {clash.text}, which is"
            out.append(
                (
                    path,
                    f"{protocol} {text} {same} already taken by {_owner(config, clash.path)}; "
                    "give each listener a port of its own",
                )
            )


def _owner(config: Config, path: tuple[str | int, ...]) -> str:
    if path[0] == "http":
        return "the HTTP API (http.listen)"
    name = config.sources[int(path[1])].name
    return key_path(path) + (f" of source {name!r}" if name else "")


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
    if src.udp_rcvbuf < 1024:
        out.append((("sources", i, "udp_rcvbuf"), "must be at least 1024 bytes"))
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
    _connections(("http",), config.http.max_connections, config.http.connection_idle_timeout, out)
    for key in ("max_subscribers", "max_subscribers_per_client"):
        if getattr(config.http, key) < 1:
            out.append((("http", key), "must be at least 1"))
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
    _names(config, out)
    _listeners(config, out)
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
        if src.type == "relp":
            _relp_source(i, src, out)
        if src.type == "sql":
            _sql_source(i, src, out)
        if src.type == "kafka":
            _kafka_source(i, src, out)
        if src.type == "snmp":
            _snmp_source(i, src, out)
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
