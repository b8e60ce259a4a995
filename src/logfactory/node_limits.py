"""The node's file descriptors: the limit raised at start and shared out between its listeners.

Every TCP connection a listener holds is a descriptor, and descriptors are one pool with the
bus, the stats files, the spool and the log. At the common soft limit of 1,024, 1,100 idle
connections once ended the whole node ("Too many open files"). So at start the node

* raises its soft limit to the hard one (:func:`raise_fd_limit`): the soft limit is a default
  for interactive shells, the hard one what the administrator allows;
* keeps a reserve for its own files (:func:`reserve`: a quarter of the limit, 64 to 1,024),
  counts what is open already, and shares the rest between its TCP listeners
  (:func:`plan_connections`): each gets its ``max_connections`` (default
  :data:`~logfactory.collect.connections.DEFAULT_MAX_CONNECTIONS`) or, when they do not all
  fit, an even share of what there is; a value the user set and that had to be lowered is a
  warning naming its configuration line (a default lowered is only said in the banner).

:func:`api_protocol` puts the HTTP API's connections under the same kind of bound as the
sources' (:mod:`logfactory.collect.connections`), and each request's head under a bound of its
size and time (:mod:`logfactory.api.request_heads`).
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import msgspec

from logfactory.collect.connections import (
    DEFAULT_MAX_CONNECTIONS,
    ConnectionLimit,
    GuardedProtocol,
)
from logfactory.config import (
    Config,
    SocketSourceConfig,
    SourceConfig,
    TcpSourceConfig,
    key_path,
)
from logfactory.node_start import config_line
from logfactory.node_tls import TlsGuardedProtocol

__all__ = [
    "ConnectionPlan",
    "FdLimit",
    "api_protocol",
    "open_fds",
    "plan_connections",
    "raise_fd_limit",
    "reserve",
]

RESERVE_MIN, RESERVE_MAX = 64, 1024
MIN_CAP = 4  # below this a listener is useless; the warning says to raise the limit
UNKNOWN_LIMIT = 1024  # a platform that cannot tell: the most common soft limit


@dataclass(frozen=True, slots=True)
class FdLimit:
    """This process's open-file limit after :func:`raise_fd_limit`, and what it was before."""

    soft: int
    hard: int
    before: int
    problem: str | None = None  # why it could not be raised, if it could not

    def describe(self) -> str:
        if self.problem is not None:
            return f"{self.soft:,} open files (could not raise it to {self.hard:,}: {self.problem})"
        if self.soft > self.before:
            return f"{self.soft:,} open files (raised from {self.before:,} to the hard limit)"
        return f"{self.soft:,} open files (the hard limit)"


def raise_fd_limit() -> FdLimit:
    """Set the soft RLIMIT_NOFILE to the hard one (an unlimited hard limit: 1,048,576)."""
    try:
        import resource
    except ImportError:  # not a Unix: nothing to raise
        return FdLimit(UNKNOWN_LIMIT, UNKNOWN_LIMIT, UNKNOWN_LIMIT)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    infinity = resource.RLIM_INFINITY
    target = 1 << 20 if hard == infinity else hard
    if soft != infinity and soft >= target:
        return FdLimit(soft, target, soft)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:  # e.g. macOS: above kern.maxfilesperproc
        return FdLimit(soft, target, soft, problem=str(exc))
    return FdLimit(target, target, soft)


def open_fds() -> int:
    """Descriptors this process has open now (0 where the platform cannot list them)."""
    for directory in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(directory)) - 1  # the listing's own descriptor
        except OSError:
            continue
    return 0


def reserve(limit: int) -> int:
    """Descriptors kept for the node's own files: bus, stats, spool, SSE readers, its log."""
    return max(RESERVE_MIN, min(RESERVE_MAX, limit // 4))


@dataclass(slots=True)
class ConnectionPlan:
    """``config`` with every TCP listener's ``max_connections`` set to what it may hold."""

    config: Config
    caps: dict[str, int] = field(default_factory=dict)  # "syslog", "api" -> connections
    warnings: list[str] = field(default_factory=list)
    reserve: int = 0

    def describe(self) -> str:
        caps = ", ".join(f"{name} {cap:,}" for name, cap in self.caps.items())
        return f"connections held at most: {caps}; {self.reserve:,} kept for the node's own files"


def _listeners(sc: SourceConfig) -> int:
    """TCP listeners of a source: its plain TCP one and its TLS one (RELP: TCP only)."""
    if sc.type == "relp":
        return int(bool(sc.listen))
    if not isinstance(sc, SocketSourceConfig):
        return 0
    return int(bool(sc.listen) and "tcp" in sc.protocols) + int(bool(sc.tls_listen))


def plan_connections(
    config: Config, *, collectors: bool, api: bool, limit: int, in_use: int
) -> ConnectionPlan:
    """Caps for the listeners this process runs so that, all full, they stay below ``limit``
    less what is open (``in_use``) and the :func:`reserve`. Water-filling: the smallest wishes
    are granted first, and what they leave is shared evenly by the others."""
    wishes: list[tuple[str, int | None, int, int]] = []  # (name, source index, wish, listeners)
    if collectors:
        for i, sc in enumerate(config.sources):
            if isinstance(sc, TcpSourceConfig) and (n := _listeners(sc)):
                wish = sc.max_connections or DEFAULT_MAX_CONNECTIONS
                wishes.append((sc.name or sc.tag or sc.type, i, wish, n))
    if api:
        wishes.append(("api", None, config.http.max_connections or DEFAULT_MAX_CONNECTIONS, 1))
    kept = reserve(limit)
    plan = ConnectionPlan(config, reserve=kept)
    left = max(0, limit - in_use - kept)
    slots = sum(n for *_, n in wishes)
    granted: dict[int | None, int] = {}
    for name, index, wish, n in sorted(wishes, key=lambda w: w[2]):
        cap = min(wish, max(MIN_CAP, left // max(1, slots)))
        left, slots = max(0, left - cap * n), slots - n
        granted[index] = cap
        plan.caps[name] = cap
        if cap < wish and _explicit(config, index):  # a default lowered: the banner says so
            plan.warnings.append(_lowered(config, index, wish, cap, limit))
    sources = [
        msgspec.structs.replace(sc, max_connections=granted[i])
        if i in granted and isinstance(sc, TcpSourceConfig)
        else sc
        for i, sc in enumerate(config.sources)
    ]
    http = config.http
    if None in granted:
        http = msgspec.structs.replace(http, max_connections=granted[None])
    plan.config = msgspec.structs.replace(config, sources=sources, http=http)
    plan.caps = {name: plan.caps[name] for name, *_ in wishes}  # configuration order
    return plan


def _explicit(config: Config, index: int | None) -> bool:
    if index is None:
        return config.http.max_connections is not None
    src = config.sources[index]
    return isinstance(src, TcpSourceConfig) and src.max_connections is not None


def _lowered(config: Config, index: int | None, wish: int, cap: int, limit: int) -> str:
    keys: tuple[str | int, ...] = ("sources", index) if index is not None else ("http",)
    keys = (*keys, "max_connections")
    line = config_line(config.path, keys)  # set by the user, so normally found
    place = f"{config.path}:{line}" if line is not None else config.path
    return (
        f"{place}: {key_path(keys)}: at most {cap:,} connections instead of {wish:,}, to fit "
        f"the open-file limit of {limit:,} (with the node's other listeners and files); raise "
        "the limit (ulimit -n, or LimitNOFILE= in a systemd unit) to keep more"
    )


def _answering(inner: asyncio.BaseProtocol) -> bool:
    """Whether uvicorn is in the middle of a request on this connection (a response still to
    finish, e.g. a server-sent event stream): then silence from the client is not idleness."""
    cycle = getattr(inner, "cycle", None)
    return cycle is not None and not getattr(cycle, "response_complete", True)


class LazyHttp(GuardedProtocol):
    """A plain-HTTP connection of the API whose uvicorn protocol is made, and told of the
    connection, only when its first byte arrives.

    A connection that never sends (an idle flood) then costs the node this guard alone, and
    closing it to make room for another (an eviction) costs a close, not a uvicorn protocol's
    set-up and tear-down: under a flood that re-opens every evicted connection, that is the
    difference between the event loop serving its clients and churning. A connection is
    counted and timed by the bound from its first moment either way.
    """

    def __init__(self, limit: ConnectionLimit, make: Callable[[], asyncio.BaseProtocol]) -> None:
        super().__init__(limit, _UNBORN)
        self._make: Callable[[], asyncio.BaseProtocol] | None = make

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._admitted(transport)

    def data_received(self, data: bytes) -> None:
        if self._make is not None and self._open and self.transport is not None:
            make, self._make = self._make, None
            self.inner = cast(asyncio.Protocol, make())
            self.inner.connection_made(self.transport)
        super().data_received(data)

    def eof_received(self) -> bool | None:
        return None if self._make is not None else super().eof_received()

    def pause_writing(self) -> None:
        if self._make is None:
            super().pause_writing()

    def resume_writing(self) -> None:
        if self._make is None:
            super().resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._make is not None:  # uvicorn never heard of it
            self._released()
            return
        super().connection_lost(exc)


#: the inner protocol of a :class:`LazyHttp` before its first byte (does nothing)
_UNBORN = asyncio.Protocol()


def api_protocol(
    limit: ConnectionLimit,
    max_header_bytes: int,
    count: Callable[[str], None] | None = None,
    tls: ssl.SSLContext | None = None,
    on_tls_failure: Callable[[], None] = lambda: None,
) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol behind ``limit``, its request heads at most ``max_header_bytes``
    and given ``limit.idle_timeout`` to arrive: what ``uvicorn.Config(http=...)`` takes (with
    ``h11_max_incomplete_event_size=max_header_bytes``). ``count`` hears the refusals. With
    ``tls`` the handshake happens behind the bound too (:mod:`logfactory.node_tls`), so uvicorn
    is given no context of its own."""
    from logfactory.api.request_heads import bounded_h11

    limit.busy = _answering
    http = bounded_h11(max_header_bytes, limit.idle_timeout, count)

    class _GuardedHttp(LazyHttp):
        def __init__(self, **kwargs: Any) -> None:  # uvicorn's config, server_state, ...
            super().__init__(limit, lambda: http(**kwargs))

    if tls is None:
        return _GuardedHttp
    context = tls

    class _GuardedHttps(TlsGuardedProtocol):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(limit, http(**kwargs), context, on_tls_failure)

    return _GuardedHttps
