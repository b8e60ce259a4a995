"""Checks across sections, which no one section can make: references between them (a route to
a workshop, a mapping's event type), names used twice, listeners that cannot all bind.

Each section's checks of its own keys are its ``problems()`` method (beside its fields); this
module runs them with the section's place in front, in the file's order of sections.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import NamedTuple

from logfactory.config.base import PathKey, Problem, bare_port, key_path
from logfactory.config.model import Config
from logfactory.event import BUILTIN_TYPES

__all__ = ["check_config"]

_HOST_PORT = re.compile(r"(\[?[\w.:\-]*\]?):([0-9]+)")


def _at(prefix: PathKey, problems: Iterable[Problem]) -> list[Problem]:
    return [((*prefix, *path), what) for path, what in problems]


def _workshop_refs(at: PathKey, names: list[str], workshops: set[str]) -> list[Problem]:
    return [
        ((*at, "workshop"), f"unknown workshop {name!r}; defined: {sorted(workshops)}")
        for name in names
        if name not in workshops
    ]


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


def _address(path: PathKey, text: str, out: list[Problem]) -> tuple[str, int] | None:
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
    path: PathKey
    protocol: str
    host: str
    port: int
    text: str  # as written in the file


def _listeners(config: Config, out: list[Problem]) -> None:
    """Every address is valid, and no two listeners of this node (sources, the API) need the
    same address and protocol: the second bind would fail when the node starts."""
    wanted: list[tuple[PathKey, str, tuple[str, ...]]] = []
    api = config.http.enabled and (
        config.bus.type != "http" or any(src.type == "http" for src in config.sources)
    )
    wanted.append((("http", "listen"), config.http.listen, ("tcp",) if api else ()))
    for i, src in enumerate(config.sources):
        wanted += [(("sources", i, key), text, protos) for key, text, protos in src.listeners()]
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


def _owner(config: Config, path: PathKey) -> str:
    if path[0] == "http":
        return "the HTTP API (http.listen)"
    name = config.sources[int(path[1])].name
    return key_path(path) + (f" of source {name!r}" if name else "")


def _workshops(config: Config, out: list[Problem]) -> None:
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
        out += _at(("workshops", name), ws.problems())
    for tag, target in config.factory.routes.items():
        if target not in workshops:
            out.append((("factory", "routes", tag), f"routes to unknown workshop {target!r}"))


def _classification(config: Config, out: list[Problem]) -> None:
    """mappings, alerts and rules: their own checks, their workshops and event types."""
    workshops = set(config.workshops)
    types = set(BUILTIN_TYPES) | {t.name for t in config.event_types}
    for i, m in enumerate(config.mappings):
        out += _at(("mappings", i), m.problems())
        out += _workshop_refs(("mappings", i, "when"), m.when.workshops, workshops)
        if m.type not in types:
            out.append(
                (
                    ("mappings", i, "type"),
                    f"unknown event type {m.type!r}; add it under event_types or use one of "
                    f"{sorted(types)}",
                )
            )
    for i, a in enumerate(config.alerts):
        out += _at(("alerts", i), a.problems())
        out += _workshop_refs(("alerts", i, "when"), a.when.workshops, workshops)
    for i, r in enumerate(config.rules):
        out += _at(("rules", i), r.problems())
        out += _workshop_refs(("rules", i, "when"), r.when.workshops, workshops)
        if r.type not in types:
            out.append((("rules", i, "type"), f"unknown event type {r.type!r}"))


def check_config(config: Config) -> list[Problem]:
    """Every problem of ``config`` as (key path, what is wrong), in the order of the file's
    sections; the loader reports the first."""
    out: list[Problem] = []
    out += _at(("node",), config.node.problems())
    out += _at(("bus",), config.bus.problems())
    out += _at(("http",), config.http.problems())
    out += _at(("store",), config.store.problems())
    _workshops(config, out)
    _names(config, out)
    _listeners(config, out)
    for i, src in enumerate(config.sources):
        out += _at(("sources", i), src.problems())
    _classification(config, out)
    return out
