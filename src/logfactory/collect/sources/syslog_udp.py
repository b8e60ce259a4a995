"""The UDP side of the syslog (and raw) listener: the socket, batched reads, kernel drops.

The socket asks for ``udp_rcvbuf`` bytes of receive buffer (``SO_RCVBUFFORCE`` when privileged,
else ``SO_RCVBUF`` capped by ``net.core.rmem_max``; a smaller buffer is logged, not refused).
:class:`UdpReader` reads it straight from a readiness callback, up to ``BATCH`` datagrams per
wake-up, and hands them to the listener's ``on_datagrams`` together (one call, one receive
time per wake-up rather than per datagram); when the listener's queue is over
its high mark it pauses the reader, and the kernel buffer absorbs the burst.

UDP loss in the kernel (receive buffer full) is read from the socket's ``drops`` column in
``/proc/net/udp`` by :func:`udp_drops`: unlike ``SO_RXQ_OVFL`` ancillary data it costs nothing
per datagram (``recvfrom`` stays the hot path) and it is current even when no datagram follows
the loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
from typing import Any, Protocol

__all__ = ["DatagramSink", "UdpReader", "open_udp_socket", "udp_drops"]

# logged as the listener, under the logger name it had before this module was split off
log = logging.getLogger("logfactory.collect.sources.syslog")


class DatagramSink(Protocol):
    """What :class:`UdpReader` feeds: the listener (``SyslogSource`` or a subclass)."""

    @property
    def kind(self) -> str: ...

    @property
    def name(self) -> str: ...

    def udp_bufsize(self) -> int: ...

    def on_datagrams(self, grams: list[tuple[bytes, Any]], bufsize: int) -> None: ...

    def over_high(self) -> bool: ...

    def pause(self, reader: UdpReader) -> None: ...


# Python's socket module does not export SO_RCVBUFFORCE; without it a privileged collector was
# held to net.core.rmem_max (4 MiB here: about 0.1 s of 100,000 small datagrams a second)
_SO_RCVBUFFORCE = 33 if sys.platform.startswith("linux") else None


def open_udp_socket(host: str, port: int, rcvbuf: int, kind: str, name: str) -> socket.socket:
    """A bound, non-blocking UDP socket with (up to) ``rcvbuf`` bytes of receive buffer;
    ``kind`` and ``name`` say which source it is for in the log."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        want = rcvbuf
        # FORCE passes net.core.rmem_max when privileged; the kernel doubles what it is given
        force = getattr(socket, "SO_RCVBUFFORCE", _SO_RCVBUFFORCE)
        try:
            if force is None:
                raise OSError
            sock.setsockopt(socket.SOL_SOCKET, force, want)
        except OSError:
            with contextlib.suppress(OSError):  # capped is not a reason to refuse to listen
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, want)
        got = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2
        if got < want:
            log.info(
                "%s source %r: UDP receive buffer %d bytes of %d asked (raise "
                "net.core.rmem_max for fewer drops)", kind, name, got, want,
            )  # fmt: skip
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def udp_drops(sock: socket.socket) -> int | None:
    """Datagrams the kernel dropped for ``sock`` since it was opened (``/proc/net/udp{,6}``),
    or None where that cannot be read (not Linux)."""
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


class UdpReader:
    """Reads datagrams straight from a non-blocking socket, up to ``BATCH`` per wake-up, and
    hands them to the source's ``on_datagrams`` (a datagram as long as the buffer, ``bufsize``,
    was truncated by the kernel).

    Not an asyncio DatagramProtocol on purpose: CPython's datagram transport makes one
    ``recvfrom`` per event-loop iteration, which caps a listener far below 100,000 datagrams/s;
    draining the socket per readiness callback does not.
    """

    BATCH = 512

    def __init__(
        self, source: DatagramSink, sock: socket.socket, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.source = source
        self.sock = sock
        self.loop = loop
        self.bufsize = source.udp_bufsize()
        self._reading = True
        self._closed = False
        loop.add_reader(sock.fileno(), self._ready)

    def _ready(self) -> None:
        src = self.source
        recv = self.sock.recvfrom
        bufsize = self.bufsize
        grams: list[tuple[bytes, Any]] = []
        append = grams.append
        for _ in range(self.BATCH):
            try:
                append(recv(bufsize))
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # e.g. ICMP errors surfacing; the socket stays usable
                log.debug("%s source %r: UDP error %s", src.kind, src.name, exc)
                break
        if grams:
            src.on_datagrams(grams, bufsize)
        if src.over_high():
            src.pause(self)

    def pause_reading(self) -> None:
        if self._reading and not self._closed:
            self._reading = False
            self.loop.remove_reader(self.sock.fileno())

    def resume_reading(self) -> None:
        if not self._reading and not self._closed:
            self._reading = True
            self.loop.add_reader(self.sock.fileno(), self._ready)

    def is_closing(self) -> bool:
        return self._closed

    def close(self) -> None:
        if not self._closed:
            if self._reading:
                self.loop.remove_reader(self.sock.fileno())
            self._closed = True
            self.sock.close()
