"""The UDP side of the syslog (and raw) listener: the socket, batched reads, kernel drops.

The socket asks for ``udp_rcvbuf`` bytes of receive buffer (:mod:`logfactory.collect.udp_socket`,
shared with the snmp source). :class:`UdpReader` reads it straight from a readiness callback, up
to ``BATCH`` datagrams per wake-up, and hands them to the listener's ``on_datagrams`` together
(one call, one receive time per wake-up rather than per datagram); when the listener's queue is
over its high mark it pauses the reader, and the kernel buffer absorbs the burst.

UDP loss in the kernel (receive buffer full) is read from ``/proc/net/udp`` by
:class:`~logfactory.collect.udp_socket.DropWatch`, so ``recvfrom`` stays the hot path.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any, Protocol

from logfactory.collect import udp_socket
from logfactory.collect.udp_socket import udp_drops

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


def open_udp_socket(host: str, port: int, rcvbuf: int, kind: str, name: str) -> socket.socket:
    """:func:`logfactory.collect.udp_socket.open_udp_socket`, logging as the listener."""
    return udp_socket.open_udp_socket(host, port, rcvbuf, kind, name, log)


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
