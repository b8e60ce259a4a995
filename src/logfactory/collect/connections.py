"""Bounds on a TCP listener's connections: how many at once, and how long one may stay silent.

Every connection holds a file descriptor, and descriptors are one pool shared with everything
the node writes (bus, stats, spool, its log). Unbounded, 1,100 idle connections at the common
limit of 1,024 ended the whole node with "Too many open files". So each listener (syslog and raw
TCP, their TLS listeners, the HTTP API) has:

* a cap, ``max_connections``. A connection beyond it takes the place of the oldest one that
  has not sent a byte yet (closed, counted as ``connections_evicted``), so a flood of idle
  sockets cannot lock real senders out; when every connection held has sent data, the new one
  is closed at once (a listening socket cannot refuse without accepting), counted as
  ``connections_refused``;
* an idle timeout: a connection that sent no byte for that long is closed, counted as
  ``connections_timed_out``. Time during which the node itself holds a connection back (flow
  control has paused reading) or is busy with it (``busy``: an HTTP request being answered, a
  server-sent event stream) is not idleness.

The node sizes the caps so that all listeners together stay below the descriptor limit minus a
reserve for its own files (:mod:`logfactory.node_limits`).

:class:`GuardedProtocol` goes in front of a listener's protocol (outermost: in front of a TLS
handshake too, so connections still handshaking count) and passes every callback on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import cast

__all__ = ["DEFAULT_MAX_CONNECTIONS", "ConnectionLimit", "GuardedProtocol"]

log = logging.getLogger(__name__)

DEFAULT_MAX_CONNECTIONS = 1024  # per listener, unless the descriptor limit asks for fewer
REPORT_INTERVAL_S = 10.0


class _Report:
    """One log line for the first event of a kind, then at most one per interval with how many
    happened since: a flood of connections must not become a flood of log lines."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._next = 0.0
        self._quiet = 0

    def __call__(self, name: str, transport: asyncio.BaseTransport | None, arg: object) -> None:
        now = time.monotonic()
        if now < self._next:
            self._quiet += 1
            return
        more = f" ({self._quiet} more since the last report)" if self._quiet else ""
        log.warning("%s: %s%s", name, self.text.format(peer=_peer(transport), arg=arg), more)
        self._quiet = 0
        self._next = now + REPORT_INTERVAL_S


class ConnectionLimit:
    """One listener's bound (see the module docstring). ``name`` is what log lines call the
    listener; ``count(counter)`` hears ``connections_refused``, ``connections_evicted`` and
    ``connections_timed_out``; ``idle_timeout`` 0 keeps silent connections open."""

    def __init__(
        self,
        name: str,
        max_connections: int,
        idle_timeout: float,
        *,
        count: Callable[[str], None] | None = None,
        busy: Callable[[asyncio.BaseProtocol], bool] | None = None,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.name = name
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.open: set[GuardedProtocol] = set()
        self.silent: dict[GuardedProtocol, None] = {}  # open, no byte yet; oldest first
        self.refused = 0
        self.evicted = 0
        self.timed_out = 0
        self.busy = busy
        self._count = count
        self._refusal = _Report(
            "refused a connection from {peer}: {arg} connections are open, each has sent "
            "data, and that is the most it keeps (max_connections)"
        )
        self._eviction = _Report(
            "closed the connection from {peer}, which had sent nothing, to make room for a new "
            "one ({arg} open: max_connections)"
        )

    def protocol(self, inner: asyncio.BaseProtocol) -> GuardedProtocol:
        """``inner`` behind this bound: what a listener's protocol factory returns."""
        return GuardedProtocol(self, inner)

    def _admit(self, conn: GuardedProtocol, transport: asyncio.BaseTransport) -> bool:
        """Room for ``conn``: below the cap, or by closing the oldest silent connection."""
        if len(self.open) >= self.max_connections:
            victim = next(iter(self.silent), None)
            if victim is None:
                self._tally("connections_refused")
                self.refused += 1
                # the descriptor is free now, not after a close handshake
                cast(asyncio.Transport, transport).abort()
                self._refusal(self.name, transport, self.max_connections)
                return False
            self.evicted += 1
            self._tally("connections_evicted")
            self._eviction(self.name, victim.transport, self.max_connections)
            self._forget(victim)
            cast(asyncio.Transport, victim.transport).abort()  # connection_lost tells its inner
        self.open.add(conn)
        self.silent[conn] = None
        return True

    def _forget(self, conn: GuardedProtocol) -> None:
        self.open.discard(conn)
        self.silent.pop(conn, None)

    def _timed_out(self, conn: GuardedProtocol) -> None:
        self.timed_out += 1
        self._tally("connections_timed_out")
        log.debug(
            "%s: closed the connection from %s, silent for %gs",
            self.name, _peer(conn.transport), self.idle_timeout,
        )  # fmt: skip

    def _tally(self, counter: str) -> None:
        if self._count is not None:
            self._count(counter)


def _peer(transport: asyncio.BaseTransport | None) -> str:
    peername = transport.get_extra_info("peername") if transport is not None else None
    return f"{peername[0]}:{peername[1]}" if peername else "-"


class GuardedProtocol(asyncio.Protocol):
    """One connection of a bounded listener: refused when the listener is full, closed when
    silent too long, otherwise every callback goes to ``inner`` unchanged."""

    def __init__(self, limit: ConnectionLimit, inner: asyncio.BaseProtocol) -> None:
        self.limit = limit
        self.inner = cast(asyncio.Protocol, inner)
        self.transport: asyncio.BaseTransport | None = None
        self._open = False
        self._silent = True  # no byte received yet: the first to go when room is needed
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._admitted(transport):
            self.inner.connection_made(transport)

    def _admitted(self, transport: asyncio.BaseTransport) -> bool:
        """Take ``transport`` under the bound (its idle timer started); False when the listener
        is full and it was closed. A subclass that connects ``inner`` later (after a TLS
        handshake) calls this itself."""
        self.transport = transport
        limit = self.limit
        if not limit._admit(self, transport):
            return False
        self._open = True
        if limit.idle_timeout > 0:
            self._loop = loop = asyncio.get_running_loop()
            self._last = loop.time()
            self._timer = loop.call_at(self._last + limit.idle_timeout, self._check)
        return True

    def data_received(self, data: bytes) -> None:
        if not self._open:
            return
        if self._silent:
            self._silent = False
            self.limit.silent.pop(self, None)
        if self._loop is not None:
            self._last = self._loop.time()
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self._open else None

    def pause_writing(self) -> None:
        if self._open:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self._open:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._released():
            self.inner.connection_lost(exc)

    def _released(self) -> bool:
        """Take the connection off the bound; False when it never was on it (refused) or is
        off already: then ``inner`` never heard of it, or has heard of its end."""
        if not self._open:
            return False
        self._open = False
        self.limit._forget(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return True

    def _check(self) -> None:
        """The idle timer: close the connection, or look again when it could be idle."""
        self._timer = None
        loop, transport, limit = self._loop, self.transport, self.limit
        if not self._open or loop is None or transport is None:
            return
        now = loop.time()
        due = self._last + limit.idle_timeout
        if now < due:
            self._timer = loop.call_at(due, self._check)
            return
        reading = getattr(transport, "is_reading", None)
        held = reading is not None and not reading()  # paused by flow control: not the peer's
        if held or (limit.busy is not None and limit.busy(self.inner)):
            self._last = now
            self._timer = loop.call_at(now + limit.idle_timeout, self._check)
            return
        limit._timed_out(self)
        transport.close()  # connection_lost tells ``inner``
