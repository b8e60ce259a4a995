"""Cross-field checks that a schema cannot express, each pointing at the offending key."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from logfactory.config import Config, Match, parse_duration, parse_size
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
        if src.type == "syslog" and not src.listen:
            out.append((("sources", i, "type"), "a syslog source needs 'listen: HOST:PORT'"))
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
