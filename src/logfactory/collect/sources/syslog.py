"""The syslog listener: UDP datagrams, TCP streams (RFC 6587 framing) and TLS (RFC 5425).

TCP is served by asyncio protocols, not stream readers: a read of many frames costs one
``FrameDecoder.feed`` call and one regex per frame, which is what a 100,000 lines/s target needs.
UDP is read by a reader callback that drains the socket in batches (:mod:`.syslog_udp`).
Protocol callbacks cannot await, so they append Records to one queue per source and a pump task
hands them to ``emit.many`` in runs. When that queue passes ``QUEUE_HIGH`` the sockets that fill
it stop being read (TCP: the sender is slowed by flow control; UDP: the 32 MiB kernel buffer
absorbs the burst) until the pump has brought it under ``QUEUE_LOW`` again; memory stays
bounded either way.

``Record.host`` is the HOSTNAME of the syslog header when it can be had with one anchored regex
(RFC 5424's third token; RFC 3164's token after ``Mmm dd hh:mm:ss`` or after an RFC 3339 time),
otherwise the peer's IP address. Decoding the rest of the header is the factory's work.

TLS (``tls_listen``) is a third listener whose connections are decrypted by
:class:`~logfactory.collect.tls.TlsServerProtocol` in front of the same TCP protocol, so framing
(octet counting or newline, detected per connection) and backpressure are the same; a failed
handshake is a counted rejection. UDP loss in the kernel (receive buffer full) is read once
per ``DROP_POLL_S`` and reported as ``dropped`` (:mod:`logfactory.collect.udp_socket`).

Each TCP and TLS listener is bounded (:mod:`logfactory.collect.connections`): at most
``max_connections`` connections at once (a new one displaces the oldest that has sent nothing,
or is refused), and one silent for ``connection_idle_timeout`` is closed, so idle sockets cannot
use up the node's file descriptors.

The raw line source (:mod:`.raw`) is this listener with other hooks: ``new_decoder``,
``on_datagram`` and ``push`` are what a subclass changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Protocol, cast

from logfactory.collect.connections import DEFAULT_MAX_CONNECTIONS, ConnectionLimit
from logfactory.collect.sources.base import Emit, parse_listen
from logfactory.collect.sources.context import SourceContext
from logfactory.collect.sources.framing import FrameDecoder
from logfactory.collect.sources.pump import drain, pump
from logfactory.collect.sources.syslog_udp import UdpReader, open_udp_socket, udp_drops
from logfactory.collect.tls import TlsServerProtocol, server_context
from logfactory.collect.udp_socket import DropWatch
from logfactory.config import SocketSourceConfig
from logfactory.record import Record, make_record

__all__ = ["SyslogSource", "header_host", "udp_drops"]

log = logging.getLogger(__name__)

DROP_POLL_S = 1.0
QUEUE_HIGH = 20_000
QUEUE_LOW = 5_000


PEER_CACHE_MAX = 4096  # UDP senders remembered (address text, meta); cleared when full
_UdpReader = UdpReader  # the name this module had for it (tests patch its BATCH here)

# One pattern per header shape, picked by the byte after the PRI: cheaper than one alternation
_RFC5424 = re.compile(rb"<\d{1,3}>\d{1,2} \S+ (\S+)")  # VERSION SP TIMESTAMP SP HOSTNAME
_RFC3164 = re.compile(rb"<\d{1,3}>[A-Z][a-z]{2} [ \d]?\d \d\d:\d\d:\d\d(?:\.\d+)? (\S+)")
_RFC3339 = re.compile(rb"<\d{1,3}>\d{4}-\d\d-\d\dT\S+ (\S+)")  # 3164 with an RFC 3339 time
_HOSTS: dict[bytes, str | None] = {}  # header token -> host (or None): a few thousand hosts
_HEADERS: dict[bytes, str] = {}  # header prefix -> host, "" for none (see header_host)
_HOSTS_MAX = 8192
_MEMO_FROM = 21  # where a 3164 HOSTNAME starts after a three-digit PRI; never past its end


def header_host(frame: bytes) -> str | None:
    """The HOSTNAME of a syslog header, or None when there is none to be had cheaply.

    A token ending in ``:`` or holding ``[`` is the TAG of a header without a hostname (what
    local programs send), not a host.

    Memoised on the frame's first bytes up to the first space from byte ``_MEMO_FROM`` on (for
    RFC 3164 with any PRI, ``<PRI>Mmm dd hh:mm:ss HOST`` and the space after it): a pattern's
    match depends only on the bytes it read, so a match whose token and the byte ending it lie
    inside that prefix is the answer for every frame starting with the same prefix. One host
    sends many lines a second, so a regular expression runs about once per host and second
    instead of once per line."""
    cut = frame.find(b" ", _MEMO_FROM)
    if cut > 0:
        known = _HEADERS.get(frame[: cut + 1])
        if known is not None:
            return known or None  # "": a header without a host
    end = frame.find(b">", 1, 5)
    if end < 0 or len(frame) <= end + 1:
        return None
    first = frame[end + 1]
    if 0x41 <= first <= 0x5A:  # A-Z: a month name
        m = _RFC3164.match(frame)
        alone = True
    elif 0x30 <= first <= 0x39:  # a digit: a 5424 version, else a 4-digit year
        m = _RFC5424.match(frame)
        alone = m is not None  # a 5424 miss may have read past the prefix: not memoised
        m = m or _RFC3339.match(frame)
    else:
        return None
    if m is None:
        return None
    token = m.group(1)
    if token in _HOSTS:
        host = _HOSTS[token]
    else:
        host = None
        if token != b"-" and not token.endswith(b":") and b"[" not in token:
            host = token.decode("utf-8", "replace")
        if len(_HOSTS) >= _HOSTS_MAX:
            _HOSTS.clear()
        _HOSTS[token] = host
    if alone and cut > 0 and m.end(1) <= cut:
        if len(_HEADERS) >= _HOSTS_MAX:
            _HEADERS.clear()
        _HEADERS[frame[: cut + 1]] = host or ""
    return host


class _Pausable(Protocol):
    """A socket reader the source can hold back (a TCP transport or the UDP reader)."""

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def is_closing(self) -> bool: ...


class _RejectLog:
    """One clear log line for the first rejection, then at most one summary per interval:
    a flood of bad frames must not turn into a flood of log lines."""

    def __init__(self, source: str, interval: float = 10.0, kind: str = "syslog") -> None:
        self.source = source
        self.kind = kind
        self.interval = interval
        self._next = 0.0
        self._quiet = 0

    def __call__(self, reason: str, peer: str) -> None:
        now = time.monotonic()
        if now < self._next:
            self._quiet += 1
            return
        more = f" ({self._quiet} more rejected since the last report)" if self._quiet else ""
        log.warning(
            "%s source %r rejected a frame from %s: %s%s", self.kind, self.source, peer, reason,
            more,
        )  # fmt: skip
        self._quiet = 0
        self._next = now + self.interval


class SyslogSource:
    """Listens on ``config.listen`` for ``config.protocols``, and on ``config.tls_listen`` for TLS.

    ``ctx.data_dir`` holds the self-signed certificate when TLS is on without ``tls_cert``; a bad
    TLS setting raises :class:`~logfactory.collect.tls.TlsConfigError` here, before anything
    runs."""

    kind: ClassVar[str] = "syslog"

    def __init__(self, config: SocketSourceConfig, ctx: SourceContext) -> None:
        kind = self.kind
        if not config.listen and not config.tls_listen:
            raise ValueError(f"a {kind} source needs 'listen: HOST:PORT' (or tls_listen)")
        self.name = ctx.name or config.name or kind
        self.tag = config.tag or kind
        self.host, self.port = parse_listen(config.listen) if config.listen else ("", 0)
        self.protocols = list(config.protocols) if config.listen else []
        self.max_frame_bytes = config.max_frame_bytes
        self.udp_rcvbuf = config.udp_rcvbuf
        self.max_connections = config.max_connections or DEFAULT_MAX_CONNECTIONS
        self.idle_timeout = float(config.connection_idle_timeout)
        self.limits: dict[str, ConnectionLimit] = {}  # "tcp", "tls": each listener's bound
        self.tls: ssl.SSLContext | None = None
        self.tls_cert: Path | None = None
        if config.tls_listen:
            self.tls_host, self.tls_port = parse_listen(config.tls_listen)
            self.tls, self.tls_cert = server_context(
                config, ctx.data_dir, hostname=ctx.hostname, key=f"source {self.name!r}"
            )
        self.bound: dict[str, tuple[str, int]] = {}
        self._drops: DropWatch | None = None  # the UDP socket's kernel drops, once listening
        self._registry = ctx.registry
        self._clock = ctx.clock
        self._group = f"source:{self.name}"
        self._reject_log = _RejectLog(self.name, kind=kind)
        self._handshaking: set[TlsServerProtocol] = set()
        self._queue: deque[Record] = deque()
        self._peers: dict[Any, tuple[str, dict[str, Any]]] = {}  # UDP sender -> (ip, meta)
        self._wake = asyncio.Event()
        self._ready = asyncio.Event()
        self._error: BaseException | None = None
        self._paused: set[_Pausable] = set()
        self._conns: set[_TcpProtocol] = set()

    # -- readiness -------------------------------------------------------------------------
    async def started(self) -> None:
        await self._ready.wait()
        if self._error is not None:
            raise self._error

    def addresses(self) -> list[str]:
        """Human-readable listen addresses, e.g. ``syslog udp 127.0.0.1:5514``."""
        return [f"{self.kind} {proto} {h}:{p}" for proto, (h, p) in self.bound.items()]

    # -- hooks for the raw source ----------------------------------------------------------
    def new_decoder(self, on_reject: Callable[[str], None]) -> FrameDecoder:
        """Framing of one stream connection: octet counting or newline, detected."""
        return FrameDecoder(self.max_frame_bytes, on_reject)

    def udp_bufsize(self) -> int:
        # one byte more than a datagram may have (with LF/CR/NUL): a full buffer means too big
        return min(65536, self.max_frame_bytes + 4)

    def on_datagrams(self, grams: list[tuple[bytes, Any]], bufsize: int) -> None:
        """One datagram is one record; a trailing LF/CR/NUL is not part of the message. The
        datagrams of one wake-up share a receive time; a datagram of ``bufsize`` bytes was
        truncated by the kernel and is rejected like an oversized one."""
        peers, limit, tag = self._peers, self.max_frame_bytes, self.tag
        received = self._clock()
        append = self._queue.append
        for data, addr in grams:
            cut = len(data) == bufsize
            data = data.rstrip(b"\r\n\0")
            if not data:
                continue
            known = peers.get(addr)
            if known is None:  # a sender's address text and meta are made once, not per datagram
                ip = str(addr[0])
                known = (ip, {"peer": f"{ip}:{addr[1]}", "transport": "udp"})
                if len(peers) >= PEER_CACHE_MAX:
                    peers.clear()
                peers[addr] = known
            if cut or len(data) > limit:
                self.reject(
                    f"datagram of {len(data)} bytes or more exceeds {limit}", known[1]["peer"]
                )
                continue
            host = header_host(data) or known[0]
            try:  # records share the meta dict: it is read-only
                append(Record(tag, host, received, data.decode(), known[1]))
            except UnicodeDecodeError:
                append(make_record(tag, host, data, known[1], received))
        self._wake.set()

    # -- running ---------------------------------------------------------------------------
    async def run(self, emit: Emit, stop: asyncio.Event) -> None:
        udp, servers = await self._listen()
        self._ready.set()
        if udp is not None:
            self._drops = DropWatch(
                udp.sock, kind=self.kind, name=self.name, registry=self._registry, logger=log
            )
        drops = asyncio.create_task(self._drops.run(DROP_POLL_S)) if self._drops else None
        queue = self._queue

        async def send(run: list[Record]) -> None:
            await emit.many(run)
            if self._paused and len(queue) <= QUEUE_LOW:
                self._resume()

        try:
            await pump(queue, self._wake, stop, send)
        finally:
            await self._close(udp, servers, drops)
        # everything accepted before the stop goes out
        await drain(queue, emit.many)

    async def _listen(self) -> tuple[UdpReader | None, list[asyncio.Server]]:
        """Bind every configured listener (UDP, TCP, TLS). If one fails, the ones bound so far
        are closed and the failure is kept for ``wait_ready`` before it is raised."""
        loop = asyncio.get_running_loop()
        udp: UdpReader | None = None
        server: asyncio.Server | None = None
        tls_server: asyncio.Server | None = None
        try:
            if "udp" in self.protocols:
                sock = open_udp_socket(self.host, self.port, self.udp_rcvbuf, self.kind, self.name)
                udp = UdpReader(self, sock, loop)
                self.bound["udp"] = udp.sock.getsockname()[:2]
            if "tcp" in self.protocols:
                tcp = self._limit("tcp")
                server = await loop.create_server(
                    lambda: tcp.protocol(_TcpProtocol(self)), self.host, self.port, backlog=1024
                )
                self.bound["tcp"] = server.sockets[0].getsockname()[:2]
            if self.tls is not None:
                tls = self._limit("tls")
                tls_server = await loop.create_server(
                    lambda: tls.protocol(self._tls_protocol()), self.tls_host, self.tls_port,
                    backlog=1024,
                )  # fmt: skip
                self.bound["tls"] = tls_server.sockets[0].getsockname()[:2]
                log.info(
                    "%s source %r: TLS on %s:%d with certificate %s",
                    self.kind, self.name, *self.bound["tls"], self.tls_cert,
                )  # fmt: skip
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            if udp is not None:
                udp.close()
            if server is not None:
                server.close()
            raise
        return udp, [s for s in (server, tls_server) if s is not None]

    async def _close(
        self,
        udp: UdpReader | None,
        servers: list[asyncio.Server],
        drops: asyncio.Task[None] | None,
    ) -> None:
        """Stop listening, end every connection (open or still in its TLS handshake), and wait
        until the servers are closed."""
        if drops is not None:
            drops.cancel()
        for srv in servers:
            srv.close()
        if udp is not None:
            if self._drops is not None:
                self._drops.close()  # the last look, while the socket is open
            udp.close()
        for conn in list(self._conns):
            conn.finish(at_stop=True)
        for pending in list(self._handshaking):
            pending.abort()
        for srv in servers:
            await srv.wait_closed()

    def _limit(self, proto: str) -> ConnectionLimit:
        registry, group = self._registry, self._group

        def count(counter: str) -> None:
            registry.add(group, counter)

        limit = ConnectionLimit(
            f"{self.kind} source {self.name!r} ({proto})", self.max_connections,
            self.idle_timeout, count=count,
        )  # fmt: skip
        self.limits[proto] = limit
        return limit

    def _tls_protocol(self) -> TlsServerProtocol:
        assert self.tls is not None
        return TlsServerProtocol(
            self.tls, _TcpProtocol(self, "tls"), self.reject, live=self._handshaking
        )

    @property
    def dropped(self) -> int:
        """Datagrams the kernel dropped for the UDP socket (counted once a second)."""
        return 0 if self._drops is None else self._drops.total

    # -- called by the protocols -----------------------------------------------------------
    def push(self, frame: bytes, peer_ip: str, meta: dict[str, Any]) -> None:
        host = header_host(frame) or peer_ip
        self._queue.append(make_record(self.tag, host, frame, meta, self._clock()))
        self._wake.set()

    def lag(self) -> tuple[int, str]:
        """Frames accepted from the network and not yet handed to the bus."""
        return len(self._queue), "records"

    def over_high(self) -> bool:
        return len(self._queue) >= QUEUE_HIGH

    def pause(self, reader: _Pausable) -> None:
        if reader not in self._paused:
            reader.pause_reading()
            self._paused.add(reader)

    def _resume(self) -> None:
        paused, self._paused = self._paused, set()
        for reader in paused:
            if not reader.is_closing():
                reader.resume_reading()

    def reject(self, reason: str, peer: str) -> None:
        self._registry.add(self._group, "rejected")
        self._reject_log(reason, peer)


class _TcpProtocol(asyncio.Protocol):
    """One connection (plain, or behind TLS): its own framing state, frames pushed to the
    source's queue with ``meta.transport`` = ``kind`` (``tcp`` or ``tls``)."""

    def __init__(self, source: SyslogSource, kind: str = "tcp") -> None:
        self.source = source
        self.kind = kind
        self.transport: asyncio.Transport | None = None
        self.ip = "-"
        self.peer = "-"
        self.decoder = source.new_decoder(self._on_reject)
        self._done = False

    def _on_reject(self, reason: str) -> None:
        self.source.reject(reason, self.peer)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport (uvloop's is not an asyncio.Transport subclass, so no isinstance)
        self.transport = transport = cast(asyncio.Transport, transport)
        peername = transport.get_extra_info("peername")
        if peername:
            self.ip = str(peername[0])
            self.peer = f"{self.ip}:{peername[1]}"
        self.source._conns.add(self)

    def data_received(self, data: bytes) -> None:
        frames = self.decoder.feed(data)
        if self.decoder.broken is not None and self.transport is not None:
            self.transport.close()  # an octet count past the limit: no frame after it is sure
        if not frames:
            return
        src = self.source
        ip, push = self.ip, src.push
        meta = {"peer": self.peer, "transport": self.kind}  # shared: a Record's meta is read-only
        for frame in frames:
            push(frame, ip, meta)
        if src.over_high() and self.transport is not None:
            src.pause(self.transport)

    def eof_received(self) -> bool | None:
        return None  # close our side too; connection_lost delivers what is left

    def connection_lost(self, exc: Exception | None) -> None:
        self.finish(at_stop=False)

    def finish(self, at_stop: bool) -> None:
        """Deliver the unfinished frame (flagged truncated when it may be) and forget the
        connection. At a stop the connection is cut by us, so any remainder may be partial."""
        if self._done:
            return
        self._done = True
        self.source._conns.discard(self)
        rest = self.decoder.close()
        if rest is not None:
            frame, truncated = rest
            meta: dict[str, Any] = {"peer": self.peer, "transport": self.kind}
            if truncated or at_stop:
                meta["truncated"] = True
            self.source.push(frame, self.ip, meta)
        if at_stop and self.transport is not None:
            with contextlib.suppress(Exception):
                self.transport.abort()
