"""The SNMP trap and inform receiver (v1, v2c, v3 USM with auth and privacy) into Records.

pysnmp 7 does the protocol work (BER, community and USM checks, decryption, acknowledging
informs) inside the agent's asyncio loop: its dispatcher is only ever given our running loop and
never ``run_dispatcher`` (which would want a loop of its own). Every datagram goes through
:meth:`SnmpSource._datagram`, which calls pysnmp synchronously and decides the outcome there:
a notification became a Record, or pysnmp threw the message away (one of the engine's drop
counters moved, or pysnmp raised on garbage) and it is counted ``rejected`` with the reason.
A v3 inform's engine-id discovery probe is neither: it is answered and not counted.

One notification is one Record: ``host`` is the v1 agent-addr (unless 0.0.0.0) or the UDP peer's
address, ``line`` a compact JSON object, e.g. for a v2c trap::

    {"version":"2c","pdu":"trap","community":"public","peer":"10.0.0.5:40123",
     "trap_oid":"1.3.6.1.6.3.1.1.5.3","uptime":1234,
     "varbinds":{"1.3.6.1.2.1.2.2.1.1.3":3},"names":{"1.3.6.1.6.3.1.1.5.3":"IF-MIB::linkDown"}}

``user`` replaces ``community`` for v3. v1 traps add ``enterprise``, ``generic``, ``specific``
and ``agent_addr`` (``trap_oid`` is then the RFC 3584 translation). ``uptime`` is in TimeTicks
(1/100 s). ``sysUpTime.0`` and ``snmpTrapOID.0`` are not repeated in ``varbinds``. Values are
ints for the integer types, dotted strings for OIDs and IP addresses, text for UTF-8 octet
strings and ``0x``-hex for other octets. ``names`` is present when ``mibs`` is configured and
some OID has a name.

Loss: SNMP has no flow control. The socket has the syslog listener's large receive buffer
(``udp_rcvbuf``), so a burst waits in the kernel rather than being dropped there; what the kernel
drops anyway is counted ``dropped`` and shown as a health warning
(:class:`~logfactory.collect.udp_socket.DropWatch`). When the pump is more than ``QUEUE_MAX``
records behind, notifications are dropped and counted ``dropped`` too (an inform was already
acknowledged by then).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import deque
from typing import Any

import msgspec
from pyasn1.type import univ  # type: ignore[import-untyped]
from pysnmp.carrier.asyncio.dgram import udp, udp6  # type: ignore[import-untyped]
from pysnmp.carrier.asyncio.dispatch import AsyncioDispatcher  # type: ignore[import-untyped]
from pysnmp.entity import config as snmp_config  # type: ignore[import-untyped]
from pysnmp.entity.rfc3413 import ntfrcv  # type: ignore[import-untyped]
from pysnmp.proto import rfc1902  # type: ignore[import-untyped]
from pysnmp.proto.api import v1, v2c  # type: ignore[import-untyped]

from logfactory.collect.ratelimit_log import RateLimitedLog
from logfactory.collect.sources.base import Emit, parse_listen
from logfactory.collect.sources.context import SourceContext
from logfactory.collect.sources.pump import drain, pump
from logfactory.collect.sources.snmp_setup import (
    BadCounters,
    OidNames,
    add_communities,
    add_users,
    load_identity,
    new_engine,
)
from logfactory.collect.udp_socket import DropWatch, open_udp_socket
from logfactory.config import SnmpSourceConfig
from logfactory.record import Record, make_record

__all__ = ["SnmpSource", "snmp_value"]

log = logging.getLogger(__name__)

QUEUE_MAX = 50_000
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SNMP_TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"
_VERSIONS = {0: "1", 1: "2c", 3: "3"}
_INFORM = v2c.InformRequestPDU.tagSet
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_encode = msgspec.json.Encoder().encode


def snmp_value(value: Any) -> int | str:
    """A varbind value as JSON wants it (see the module docstring)."""
    if isinstance(value, univ.Integer):  # Integer32, Counter32/64, Gauge32, TimeTicks, ...
        return int(value)
    if isinstance(value, rfc1902.IpAddress):
        return str(value.prettyPrint())
    if isinstance(value, univ.OctetString):
        octets = bytes(value)
        try:
            text = octets.decode("utf-8")
        except UnicodeDecodeError:
            return "0x" + octets.hex()
        return "0x" + octets.hex() if _CONTROL.search(text) else text
    if isinstance(value, univ.ObjectIdentifier):
        return str(value)
    return str(value.prettyPrint())  # Null and the v2 exceptions (noSuchObject, ...): text


class _Transport(udp.UdpAsyncioTransport):  # type: ignore[misc]
    """pysnmp's UDP transport, handing each datagram to the source at once (pysnmp defers it
    with ``call_soon``, which would hide which datagram a rejection belongs to)."""

    source: SnmpSource

    def datagram_received(self, datagram: bytes, address: Any) -> None:
        self.source._datagram(self, address, datagram)


class _Transport6(udp6.Udp6AsyncioTransport):  # type: ignore[misc]
    source: SnmpSource

    def datagram_received(self, datagram: bytes, address: Any) -> None:
        self.source._datagram(self, address, datagram)


class SnmpSource:
    """Receives traps and informs on ``config.listen`` (UDP); see the module docstring."""

    def __init__(self, config: SnmpSourceConfig, ctx: SourceContext) -> None:
        if not config.listen:
            raise ValueError("an snmp source needs 'listen: HOST:PORT'")
        self.name = ctx.name or config.name or "snmp"
        self.tag = config.tag or "snmp"
        self.host, self.port = parse_listen(config.listen)
        self.config = config
        self.data_dir = ctx.data_dir
        self.bound: tuple[str, int] | None = None
        self.engine_id: bytes = b""  # ours, once started: v3 inform senders need it
        self._registry = ctx.registry
        self._clock = ctx.clock
        self._group = f"source:{self.name}"
        self._names: OidNames | None = None
        self._bad: BadCounters | None = None
        self._queue: deque[Record] = deque()
        self._wake = asyncio.Event()
        self._ready = asyncio.Event()
        self._error: BaseException | None = None
        self._drops: DropWatch | None = None  # the socket's kernel drops, once listening
        # the first problem in full, then at most one line per 10 s: a flood of bad datagrams
        # must not become a flood of log lines
        self._problems = RateLimitedLog(log, 10.0)

    # -- readiness -------------------------------------------------------------------------
    async def started(self) -> None:
        await self._ready.wait()
        if self._error is not None:
            raise self._error

    def addresses(self) -> list[str]:
        """E.g. ``["snmp udp 127.0.0.1:1162"]`` once listening."""
        return [] if self.bound is None else [f"snmp udp {self.bound[0]}:{self.bound[1]}"]

    def lag(self) -> tuple[int, str]:
        """Traps accepted (and acknowledged, for informs) and not yet handed to the bus."""
        return len(self._queue), "records"

    # -- running ---------------------------------------------------------------------------
    async def run(self, emit: Emit, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        try:
            eng, receiver = await self._start(loop)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            raise
        self._ready.set()
        drops = asyncio.create_task(self._drops.run()) if self._drops is not None else None
        try:
            await pump(self._queue, self._wake, stop, emit.many)
        finally:
            if drops is not None:
                drops.cancel()
            if self._drops is not None:
                self._drops.close()  # the last look, while the socket is open
            await self._close(eng, receiver)
        # everything accepted before the stop goes out
        await drain(self._queue, emit.many)

    async def _start(self, loop: asyncio.AbstractEventLoop) -> tuple[Any, Any]:
        cfg = self.config
        if cfg.mibs:
            self._names = OidNames(cfg.mibs)
        engine_id, boots = load_identity(self.data_dir, self.name, cfg.engine_id)
        eng = new_engine(engine_id, boots)
        add_communities(eng, cfg.communities)
        add_users(eng, cfg.v3_users)
        self._bad = BadCounters(eng)
        six = ":" in self.host
        sock = open_udp_socket(self.host, self.port, cfg.udp_rcvbuf, "snmp", self.name, log)
        transport = (_Transport6 if six else _Transport)(loop=loop)
        transport.source = self
        eng.register_transport_dispatcher(AsyncioDispatcher(loop=loop))
        snmp_config.add_transport(eng, (udp6 if six else udp).DOMAIN_NAME, transport)
        transport.open_server_mode(sock=sock)
        try:
            await transport._lport  # the endpoint exists: datagrams are being read
        except BaseException:
            eng.close_dispatcher()
            sock.close()
            raise
        receiver = ntfrcv.NotificationReceiver(eng, self._notification)
        self.bound = sock.getsockname()[:2]
        self.engine_id = engine_id
        self._drops = DropWatch(
            sock, kind="snmp", name=self.name, registry=self._registry, logger=log
        )
        log.info(
            "snmp source %r listening on udp %s:%s, engine id 0x%s (boots %d)",
            self.name, *self.bound, engine_id.hex(), boots,
        )  # fmt: skip
        return eng, receiver

    async def _close(self, eng: Any, receiver: Any) -> None:
        dispatcher = eng.transport_dispatcher
        timer = getattr(dispatcher, "loopingcall", None)
        with contextlib.suppress(Exception):
            receiver.close(eng)
        eng.close_dispatcher()  # closes the transport (and our socket with it)
        if isinstance(timer, asyncio.Future):
            with contextlib.suppress(asyncio.CancelledError):
                await timer

    # -- called by pysnmp, synchronously, on the loop ------------------------------------------
    def _datagram(self, transport: Any, address: Any, data: bytes) -> None:
        bad = self._bad
        assert bad is not None
        before = bad.snapshot()
        deliver = transport._callback_function
        try:
            if deliver is None:
                return  # closing
            deliver(transport, address, data)
        except Exception as exc:  # pysnmp raises on some garbage instead of counting it
            self._reject(f"undecodable datagram of {len(data)} bytes ({exc!r:.120})", address)
            return
        after = bad.snapshot()
        if after != before:
            self._reject(BadCounters.reason(before, after), address)

    def _notification(
        self,
        eng: Any,
        state_reference: Any,
        context_engine_id: Any,
        context_name: Any,
        var_binds: Any,
        cb_ctx: Any,
    ) -> None:
        ctx = eng.observer.get_execution_context("rfc3412.receiveMessage:request")
        address = ctx["transportAddress"]
        ip = str(address[0])
        peer = f"{ip}:{address[1]}"
        if len(self._queue) >= QUEUE_MAX:
            self._count("dropped")
            self._log(f"dropped a notification from {peer}: {QUEUE_MAX} records are queued")
            return
        model = int(ctx["messageProcessingModel"])
        pdu = ctx["pdu"]
        doc: dict[str, Any] = {
            "version": _VERSIONS.get(model, str(model)),
            "pdu": "inform" if pdu.tagSet == _INFORM else "trap",
            "user" if model == 3 else "community": str(ctx["securityName"]),
            "peer": peer,
        }
        host = ip
        varbinds: dict[str, int | str] = {}
        trap_oid = ""
        uptime: int | None = None
        for i, (oid, value) in enumerate(var_binds):
            key = str(oid)
            if i == 0 and key == SYS_UPTIME:
                uptime = int(value)
            elif i == 1 and key == SNMP_TRAP_OID:
                trap_oid = str(value)
            elif model != 0:  # v1: the PDU's own varbinds, not the RFC 3584 additions
                varbinds[key] = snmp_value(value)
        doc["trap_oid"] = trap_oid
        doc["uptime"] = uptime
        if model == 0:
            api = v1.apiTrapPDU
            agent = str(api.get_agent_address(pdu).prettyPrint())
            doc["enterprise"] = str(api.get_enterprise(pdu))
            doc["generic"] = int(api.get_generic_trap(pdu))
            doc["specific"] = int(api.get_specific_trap(pdu))
            doc["agent_addr"] = agent
            doc["uptime"] = int(api.get_timestamp(pdu))
            for oid, value in api.get_varbinds(pdu):
                varbinds[str(oid)] = snmp_value(value)
            if agent not in ("0.0.0.0", ""):
                host = agent
        doc["varbinds"] = varbinds
        if self._names is not None:
            names: dict[str, str] = {}
            for oid in (trap_oid, doc.get("enterprise", ""), *varbinds):
                if oid and (name := self._names.name(oid)) is not None:
                    names[oid] = name
            if names:
                doc["names"] = names
        line = _encode(doc).decode()
        meta = {"peer": peer, "transport": "udp"}
        self._queue.append(make_record(self.tag, host, line, meta, self._clock()))
        self._wake.set()

    # -- accounting ------------------------------------------------------------------------
    def _count(self, counter: str) -> None:
        self._registry.add(self._group, counter)

    def _reject(self, reason: str, address: Any) -> None:
        self._count("rejected")
        try:
            peer = f"{address[0]}:{address[1]}"
        except (TypeError, IndexError):
            peer = str(address)
        self._log(f"rejected a datagram from {peer}: {reason}")

    def _log(self, message: str) -> None:
        self._problems.warning("problem", "snmp source %r %s", self.name, message)
