"""UDP listener sockets of every source that has one (syslog, raw, snmp): one way to open them
with a large receive buffer, and one way to find out and report what the kernel dropped.

UDP has no flow control: when a burst comes faster than the node reads, the kernel keeps it in
the socket's receive buffer, and what does not fit is dropped before anyone sees it. So each
listener asks for ``udp_rcvbuf`` bytes (``SO_RCVBUFFORCE`` when privileged, else ``SO_RCVBUF``
capped by ``net.core.rmem_max``; a smaller buffer is logged, not refused): the kernel's default
(about 256 small datagrams) lost all but 257 of a burst of 3,000 SNMP traps.

What was dropped anyway is read from the socket's ``drops`` column in ``/proc/net/udp{,6}`` by
:func:`udp_drops`: unlike ``SO_RXQ_OVFL`` ancillary data it costs nothing per datagram and it is
current even when no datagram follows the loss. :class:`DropWatch` reads it once a second and
reports it three ways: the source's ``dropped`` counter (stats, ``/metrics``), a log line when a
run of drops starts, and a health warning while any were dropped in the last minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import time
from collections import deque
from collections.abc import Callable

from logfactory.stats import StatsRegistry

__all__ = ["DROP_POLL_S", "DropWatch", "open_udp_socket", "rcvbuf_of", "udp_drops"]

log = logging.getLogger(__name__)

DROP_POLL_S = 1.0

# Python's socket module does not export SO_RCVBUFFORCE; without it a privileged collector was
# held to net.core.rmem_max (4 MiB here: about 0.1 s of 100,000 small datagrams a second)
_SO_RCVBUFFORCE = 33 if sys.platform.startswith("linux") else None


def open_udp_socket(
    host: str, port: int, rcvbuf: int, kind: str, name: str, logger: logging.Logger = log
) -> socket.socket:
    """A bound, non-blocking UDP socket with (up to) ``rcvbuf`` bytes of receive buffer;
    ``kind`` and ``name`` say which source it is for in ``logger``'s lines."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        # FORCE passes net.core.rmem_max when privileged; the kernel doubles what it is given
        force = getattr(socket, "SO_RCVBUFFORCE", _SO_RCVBUFFORCE)
        try:
            if force is None:
                raise OSError
            sock.setsockopt(socket.SOL_SOCKET, force, rcvbuf)
        except OSError:
            with contextlib.suppress(OSError):  # capped is not a reason to refuse to listen
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        got = rcvbuf_of(sock)
        if got < rcvbuf:
            logger.info(
                "%s source %r: UDP receive buffer %d bytes of %d asked (raise "
                "net.core.rmem_max for fewer drops)", kind, name, got, rcvbuf,
            )  # fmt: skip
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def rcvbuf_of(sock: socket.socket) -> int:
    """The receive buffer ``sock`` was given, in the bytes asked (Linux reports twice that)."""
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2


def udp_drops(sock: socket.socket) -> int | None:
    """Datagrams the kernel dropped for ``sock`` since it was opened (``/proc/net/udp{,6}``),
    or None where that cannot be read (not Linux, or the socket is closed)."""
    try:
        inode = str(os.fstat(sock.fileno()).st_ino)
    except OSError:
        return None
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table, "rb") as f:
                lines = f.read().split(b"\n")[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            # sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
            if len(cols) >= 13 and cols[9].decode() == inode:
                return int(cols[12])
    return None


class DropWatch:
    """What the kernel dropped for one source's UDP socket, reported (see the module docstring).

    :meth:`check` reads the counter and reports what is new; :meth:`run` checks every
    ``interval`` until cancelled; :meth:`close` checks a last time (call it before the socket
    closes) and takes the warning down. ``total`` is every drop since the socket opened.
    The warning is ``source:<name>:dropped`` (:meth:`StatsRegistry.warning`): drops are data
    lost, but the node is working, so health stays 200 and lists it under ``warnings``."""

    WINDOW_S = 60.0

    def __init__(
        self,
        sock: socket.socket,
        *,
        kind: str,
        name: str,
        registry: StatsRegistry | None,
        logger: logging.Logger = log,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sock = sock
        self.kind = kind
        self.name = name
        self.total = 0
        self._registry = registry
        self._log = logger
        self._clock = clock
        self._group = f"source:{name}"
        self._warning = f"source:{name}:dropped"
        self._recent: deque[tuple[float, int]] = deque()  # (when seen, how many)
        self._shown: str | None = None
        self._rcvbuf = rcvbuf_of(sock)

    def check(self) -> int:
        """Reports the drops since the last check (returned) and updates the warning."""
        now = self._clock()
        total = udp_drops(self.sock)
        new = total - self.total if total is not None and total > self.total else 0
        if new:
            self.total += new
            if self._registry is not None:
                self._registry.add(self._group, "dropped", new)
            if not self._recent:  # a run of drops starts: say so once, the counter says the rest
                self._log.warning(
                    "%s source %r: the kernel dropped %d UDP datagrams: the receive buffer "
                    "(%d bytes) was full; counted as 'dropped' (see udp_rcvbuf)",
                    self.kind, self.name, new, self._rcvbuf,
                )  # fmt: skip
            self._recent.append((now, new))
        while self._recent and self._recent[0][0] <= now - self.WINDOW_S:
            self._recent.popleft()
        recent = sum(n for _, n in self._recent)
        self._show(
            f"{self.kind} source {self.name!r}: the kernel dropped {recent:,} UDP datagrams in "
            f"the last minute (receive buffer of {self._rcvbuf:,} bytes full; see udp_rcvbuf)"
            if recent
            else None
        )
        return new

    async def run(self, interval: float = DROP_POLL_S) -> None:
        while True:
            await asyncio.sleep(interval)
            self.check()

    def close(self) -> None:
        self.check()
        self._show(None)

    def _show(self, text: str | None) -> None:
        if text != self._shown:
            self._shown = text
            if self._registry is not None:
                self._registry.warning(self._warning, text)
