"""The RELP listener: syslog with acknowledgements (rsyslog's ``omrelp``), lossless through a crash.

Plain TCP syslog has no acknowledgement: what the kernel had accepted but the node had not yet
read is gone when the node is killed, and the sender cannot know. RELP (:mod:`.relp_frame`)
answers every ``syslog`` frame with ``rsp 200 OK``, and its sender keeps each frame until then,
sending it again over a new session when one breaks. So the answer is sent here only once the
record is **durable**: emitted, and the producer flushed (``emit.flush()``, the agent's; with the
spool in front of a remote bus, durable means on the bus or in the spool's file). A frame that
was not answered when the node died is sent again after the restart: nothing is lost, and what
was durable but not yet answered arrives twice (at least once; at most the sender's window of
unanswered frames per connection, 128 for omrelp by default, comes twice).

Acknowledgements are batched: frames are emitted as they come (one queue, one pump, as in the
syslog listener), and one flush at a time covers everything emitted before it; when it
returns, every connection gets the answers for its frames up to there, in the order they came
(RELP wants answers in command order). While one flush runs the next batch gathers, so a
sender's window keeps moving at the rate the bus can make records durable.

Bounds: a frame's DATALEN above ``max_frame_bytes`` ends its connection before any of it is
read, as does any framing error (counted as ``rejected``, then the ``serverclose`` hint and a
close: the spec's answer to a broken stream; the sender reconnects and sends its unanswered
frames again). Reading stops on every connection while more than ``QUEUE_HIGH`` records wait
for the bus, and on one connection while its answers wait in a full send buffer (a client
that does not read its answers is not read either). The listener is bounded like the syslog
one (:mod:`logfactory.collect.connections`, which counts what it closes): at most
``max_connections`` sessions, and a session silent for ``connection_idle_timeout`` with nothing
left to answer is closed (rsyslog reconnects when it next has something to send).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, cast

from logfactory.collect.connections import DEFAULT_MAX_CONNECTIONS, ConnectionLimit
from logfactory.collect.sources.base import Emit, parse_listen
from logfactory.collect.sources.context import SourceContext
from logfactory.collect.sources.pump import drain, pump
from logfactory.collect.sources.relp_frame import (
    SERVERCLOSE,
    Frame,
    RelpDecoder,
    open_answer,
    rsp,
)
from logfactory.collect.sources.syslog import _RejectLog, header_host
from logfactory.config import RelpSourceConfig
from logfactory.record import Record, make_record

__all__ = ["RelpSource"]

log = logging.getLogger(__name__)

QUEUE_HIGH = 20_000
QUEUE_LOW = 5_000
SOFTWARE = "logfactory"  # our relp_software offer
FLUSH_RETRY_S = 0.5  # after a failed flush, before the next try
_OK = b"200 OK"


class RelpSource:
    """Listens on ``config.listen`` (TCP) for RELP sessions; one Record per ``syslog`` frame."""

    kind: ClassVar[str] = "relp"

    def __init__(self, config: RelpSourceConfig, ctx: SourceContext) -> None:
        if not config.listen:
            raise ValueError("a relp source needs 'listen: HOST:PORT'")
        self.name = ctx.name or config.name or self.kind
        self.tag = config.tag or "syslog"
        self.host, self.port = parse_listen(config.listen)
        self.max_frame_bytes = config.max_frame_bytes
        self.limit = ConnectionLimit(
            f"relp source {self.name!r}",
            config.max_connections or DEFAULT_MAX_CONNECTIONS,
            float(config.connection_idle_timeout),
            count=self.count,
            busy=lambda conn: bool(cast(_RelpConnection, conn).acks),  # answers still due
        )
        self.bound: tuple[str, int] | None = None
        self._registry = ctx.registry
        self._clock = ctx.clock
        self._group = f"source:{self.name}"
        self._reject_log = _RejectLog(self.name, kind=self.kind)
        self._queue: deque[Record] = deque()
        self._pushed = 0  # records queued so far; a record's sequence number is its count
        self._emitted = 0  # records handed to emit (in queue order)
        self._durable = 0  # records the last successful flush covered
        self._final = False  # stopping: the flusher ends once everything emitted is durable
        self._paused = False
        self._wake = asyncio.Event()  # the pump: records queued, or stop
        self._flush_wake = asyncio.Event()  # the flusher: records emitted, or the end
        self._ready = asyncio.Event()
        self._error: BaseException | None = None
        self.conns: set[_RelpConnection] = set()
        self._waiting: set[_RelpConnection] = set()  # with answers waiting for a flush

    # -- readiness -------------------------------------------------------------------------
    async def started(self) -> None:
        await self._ready.wait()
        if self._error is not None:
            raise self._error

    def addresses(self) -> list[str]:
        """E.g. ``relp tcp 127.0.0.1:2514`` once listening."""
        return [f"{self.kind} tcp {self.bound[0]}:{self.bound[1]}"] if self.bound else []

    def lag(self) -> tuple[int, str]:
        """Frames accepted from the network and not yet handed to the bus."""
        return len(self._queue), "records"

    # -- running ---------------------------------------------------------------------------
    async def run(self, emit: Emit, stop: asyncio.Event) -> None:
        flush = cast(Callable[[], Awaitable[None]] | None, getattr(emit, "flush", None))
        server: asyncio.Server | None = None
        try:
            if flush is None:
                raise TypeError("a relp source needs an emit with flush() (the agent's)")
            server = await asyncio.get_running_loop().create_server(
                lambda: self.limit.protocol(_RelpConnection(self)),
                self.host,
                self.port,
                backlog=1024,
            )
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            raise
        self.bound = server.sockets[0].getsockname()[:2]
        self._ready.set()
        flusher = asyncio.create_task(self._flusher(flush))
        queue = self._queue

        async def emitted(run: list[Record]) -> None:
            await emit.many(run)
            self._emitted += len(run)

        async def send(run: list[Record]) -> None:
            await emitted(run)
            self._flush_wake.set()
            if self._paused and len(queue) <= QUEUE_LOW:
                self._paused = False
                for conn in list(self.conns):
                    conn.unhold("queue")

        try:
            await pump(queue, self._wake, stop, send)
            server.close()
            for conn in list(self.conns):
                conn.hold("stop")
            # everything accepted before the stop goes out, and is answered
            await drain(queue, emitted)
            self._final = True
            self._flush_wake.set()
            await flusher
            for conn in list(self.conns):
                conn.end(hint=True)
        finally:
            server.close()
            flusher.cancel()
            for conn in list(self.conns):
                conn.abort()

    async def _flusher(self, flush: Callable[[], Awaitable[None]]) -> None:
        """One flush at a time, each covering every record emitted before it; then answers."""
        while True:
            if self._emitted <= self._durable:
                if self._final:
                    return
                self._flush_wake.clear()
                await self._flush_wake.wait()
                continue
            target = self._emitted
            try:
                await flush()
            except Exception as exc:
                self._flush_failed(exc)
                if self._final:
                    return
                await asyncio.sleep(FLUSH_RETRY_S)
                continue
            self._durable = target
            for conn in list(self._waiting):
                conn.release()

    def _flush_failed(self, exc: Exception) -> None:
        """Records not known durable are not answered: the sessions waiting for them end, and
        their senders send those frames again (the records may then come twice)."""
        log.error("relp source %r: the bus did not take its records (%s)", self.name, exc)
        self._registry.add(self._group, "errors")
        for conn in list(self._waiting):
            conn.abort()

    # -- called by the connections ---------------------------------------------------------
    def push(self, frame: bytes, peer_ip: str, meta: dict[str, Any]) -> int:
        """Queue one record; its sequence number (answered once that many are durable)."""
        host = header_host(frame) or peer_ip
        self._queue.append(make_record(self.tag, host, frame, meta, self._clock()))
        self._pushed += 1
        self._wake.set()
        if not self._paused and len(self._queue) >= QUEUE_HIGH:
            self._paused = True
            for conn in list(self.conns):
                conn.hold("queue")
        return self._pushed

    @property
    def durable(self) -> int:
        return self._durable

    @property
    def paused(self) -> bool:
        return self._paused

    def waiting(self, conn: _RelpConnection, waits: bool) -> None:
        if waits:
            self._waiting.add(conn)
        else:
            self._waiting.discard(conn)

    def count(self, counter: str) -> None:
        self._registry.add(self._group, counter)

    def reject(self, reason: str, peer: str) -> None:
        self.count("rejected")
        self._reject_log(reason, peer)


class _RelpConnection(asyncio.Protocol):
    """One RELP session: frames in, records pushed, answers held until their record is durable
    (``acks``: (sequence number needed, rsp bytes), in command order)."""

    def __init__(self, source: RelpSource) -> None:
        self.source = source
        self.decoder = RelpDecoder(source.max_frame_bytes)
        self.transport: asyncio.Transport | None = None
        self.ip = "-"
        self.peer = "-"
        self.meta: dict[str, Any] = {}
        self.opened = False
        self.acks: deque[tuple[int, bytes]] = deque()
        self.last_seq = 0  # the sequence number of this session's latest record
        self.ending = False  # nothing more is read; closed once the answers are out
        self._hint = False  # send serverclose before closing
        self._holds: set[str] = set()
        self._gone = False

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)
        peername = transport.get_extra_info("peername")
        if peername:
            self.ip = str(peername[0])
            self.peer = f"{self.ip}:{peername[1]}"
        self.meta = {"peer": self.peer, "transport": "relp"}  # shared: records' meta is read-only
        src = self.source
        src.conns.add(self)
        if src.paused:
            self.hold("queue")

    def data_received(self, data: bytes) -> None:
        if self.ending or self._gone:
            return
        for frame in self.decoder.feed(data):
            self._frame(frame)
            if self.ending:
                break
        error = self.decoder.error
        if error is not None and not self.ending:
            self.fail(str(error))
        self.release()

    def eof_received(self) -> bool | None:
        return None  # the peer is gone: what it did not get answered it sends again

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone = True
        self.acks.clear()
        self.source.conns.discard(self)
        self.source.waiting(self, False)

    def pause_writing(self) -> None:
        self.hold("writing")  # a client that does not read its answers is not read either

    def resume_writing(self) -> None:
        self.unhold("writing")

    # -- the session -----------------------------------------------------------------------
    def _frame(self, frame: Frame) -> None:
        if frame.txnr == 0:
            return  # a hint from the client: none is defined, so none needs acting on
        command = frame.command
        if command == "syslog" and self.opened:
            message = frame.data.rstrip(b"\r\n\0")  # a sender's template may end in LF
            if message:
                self.last_seq = self.source.push(message, self.ip, self.meta)
            self._answer(frame.txnr, _OK)
        elif command == "open":
            if self.opened:  # what librelp's server answers too
                self._answer(frame.txnr, b"200 connection already open - ignored")
                return
            text, ok = open_answer(frame.data, SOFTWARE)
            self._answer(frame.txnr, text)
            self.opened = ok
            if not ok:
                self.fail(f"open refused: {text[4:].decode()}")
        elif command == "close":
            self._answer(frame.txnr, b"")  # then the client closes; so do we
            self.ending = True
            self.hold("ending")
        elif not self.opened:
            self.fail(f"{command!r} before open")
        else:
            self.source.reject(f"unknown command {command!r}", self.peer)
            self._answer(frame.txnr, b"500 command not supported")

    def _answer(self, txnr: int, text: bytes) -> None:
        """Answer once this session's records up to now are durable (answers keep order)."""
        self.acks.append((self.last_seq, rsp(txnr, text)))

    def fail(self, reason: str) -> None:
        """A broken stream or session: answer what came before, hint, close."""
        self.source.reject(reason, self.peer)
        self.ending = True
        self._hint = True
        self.hold("ending")

    def release(self) -> None:
        """Send the answers whose records are durable; end the session if it is ending and
        nothing is left to answer."""
        if self._gone:
            return
        acks, durable = self.acks, self.source.durable
        out: list[bytes] = []
        while acks and acks[0][0] <= durable:
            out.append(acks.popleft()[1])
        if out and self.transport is not None:
            self.transport.write(b"".join(out))
        self.source.waiting(self, bool(acks))
        if self.ending and not acks:
            self.end(hint=self._hint)

    def end(self, *, hint: bool) -> None:
        """Close after what was written (and the serverclose hint, if ``hint``)."""
        if self._gone:
            return
        self._gone = True
        self.source.conns.discard(self)
        self.source.waiting(self, False)
        if self.transport is not None:
            with contextlib.suppress(Exception):
                if hint:
                    self.transport.write(SERVERCLOSE)
                self.transport.close()

    def abort(self) -> None:
        """Drop the session now, unanswered frames and all (the sender sends them again)."""
        self._gone = True
        self.source.conns.discard(self)
        self.source.waiting(self, False)
        if self.transport is not None:
            with contextlib.suppress(Exception):
                self.transport.abort()

    def hold(self, why: str) -> None:
        """Stop reading for ``why`` (until :meth:`unhold` clears every reason)."""
        transport = self.transport
        if not self._holds and transport is not None and not transport.is_closing():
            transport.pause_reading()
        self._holds.add(why)

    def unhold(self, why: str) -> None:
        if why not in self._holds:
            return
        self._holds.discard(why)
        transport = self.transport
        if not self._holds and transport is not None and not transport.is_closing():
            transport.resume_reading()
