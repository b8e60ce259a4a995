"""The HTTP API over TLS: its server context, client certificates, and where the handshake runs.

Context: ``http.tls_cert`` and ``tls_key`` make the API serve HTTPS (TLS 1.2 or later);
``http.tls_client_ca`` adds mutual TLS: the handshake asks for a client certificate and accepts
only one that a CA in that bundle signed. ``tls_client_auth: required`` refuses a connection
without one; ``optional`` serves it (the bearer token decides, as without mutual TLS) but still
refuses a certificate that does not verify. A file that cannot be loaded is a start-up error
naming its configuration line, never a listener whose every handshake fails.

Handshake: done behind the connection bound (:class:`TlsGuardedProtocol`), not by
``loop.create_server(ssl=...)``. There the loop handshakes before the server's protocol exists,
so a connection still handshaking escaped ``max_connections`` and ``connection_idle_timeout``:
a client that opened TLS and stalled held its descriptor for the loop's own 60 s, and nothing
bounded how many did so at once. Here the bound admits the connection first
(counted, evictable while it has not finished: it has sent no HTTP byte), its idle timer runs
during the handshake, and ``loop.start_tls`` (asyncio's or uvloop's) does the TLS; uvicorn's
protocol sees the connection only once it is encrypted and verified.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import cast

from logfactory.collect.connections import ConnectionLimit, GuardedProtocol
from logfactory.config import Config
from logfactory.node_start import NodeError, where

__all__ = ["TlsGuardedProtocol", "api_tls_context"]

log = logging.getLogger(__name__)

# How long a connection the node closes waits for the peer's TLS close_notify (the loop's
# default: 30 s). HTTP needs no answer, and an idle keep-alive client (an edge collector
# always holds one) does not read until its next request: with 30 s every stop of a node
# with such a client took 30 s. What a response left in the buffers (uvicorn's flow control
# keeps it to about 64 KiB) has these seconds to reach a slow reader.
SHUTDOWN_TIMEOUT_S = 5.0


def api_tls_context(config: Config) -> ssl.SSLContext | None:
    """The API's server context, or None when it serves plain HTTP. Raises :class:`NodeError`
    naming the configuration line of a certificate, key or CA bundle that cannot be loaded."""
    http = config.http
    if http.tls_cert is None or http.tls_key is None:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(http.tls_cert, http.tls_key)
    except OSError as exc:  # ssl.SSLError is one too
        raise NodeError(
            f"{where(config, ('http', 'tls_cert'), '')}: cannot load the certificate "
            f"{http.tls_cert} with the key {http.tls_key}: {exc.strerror or exc}"
        ) from exc
    if http.tls_client_ca is not None:
        try:
            ctx.load_verify_locations(cafile=http.tls_client_ca)
        except OSError as exc:
            raise NodeError(
                f"{where(config, ('http', 'tls_client_ca'), '')}: cannot load the client CA "
                f"bundle {http.tls_client_ca}: {exc.strerror or exc}; give a readable PEM file "
                "with the certificate of each CA that signs the clients' certificates"
            ) from exc
        required = http.tls_client_auth == "required"
        ctx.verify_mode = ssl.CERT_REQUIRED if required else ssl.CERT_OPTIONAL
    return ctx


class TlsGuardedProtocol(GuardedProtocol):
    """One connection of the API over TLS (see the module docstring): admitted by ``limit``,
    then handshaken with ``context``; ``inner`` (uvicorn's protocol) is connected to the
    encrypted transport once the handshake succeeded, and never hears of one that failed.
    ``on_failure()`` hears about each connection that ended before its handshake finished
    (refused certificate, garbage, timeout, a peer that hung up)."""

    def __init__(
        self,
        limit: ConnectionLimit,
        inner: asyncio.BaseProtocol,
        context: ssl.SSLContext,
        on_failure: Callable[[], None],
    ) -> None:
        super().__init__(limit, inner)
        self.context = context
        self._on_failure = on_failure
        self._handshake: asyncio.Task[None] | None = None
        # bytes of the handshake that reach this protocol before ``start_tls`` has put the
        # loop's TLS protocol in its place (on uvloop, pausing in connection_made did not hold
        # them back: one connection in three lost its ClientHello); None once it has
        self._raw: list[bytes] | None = []
        # decrypted bytes that arrive before ``inner`` is connected (a TLS 1.3 client sends its
        # request with its last handshake message); None once ``inner`` is connected
        self._early: list[bytes] | None = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._admitted(transport):
            return
        raw = cast(asyncio.Transport, transport)  # uvloop's is no asyncio.Transport subclass
        raw.pause_reading()  # the ClientHello is for the TLS layer that start_tls puts in
        self._handshake = asyncio.get_running_loop().create_task(self._start_tls(raw))

    async def _start_tls(self, raw: asyncio.Transport) -> None:
        loop = asyncio.get_running_loop()
        tls: asyncio.BaseTransport | None = None
        raw_early, self._raw = self._raw or [], None  # from here on the TLS protocol reads
        if raw_early:  # to it once it has started its handshake: after start_tls's call_soons
            loop.call_soon(loop.call_soon, _feed, raw, b"".join(raw_early))
        try:
            tls = await loop.start_tls(
                raw, self, self.context, server_side=True,
                ssl_shutdown_timeout=SHUTDOWN_TIMEOUT_S,
            )  # fmt: skip
        except Exception as exc:  # any failure of a peer's handshake is that peer's problem
            log.debug("TLS handshake from %s failed: %r", raw.get_extra_info("peername"), exc)
        if tls is None or raw.is_closing() or not self._open:
            # failed, or ended before it finished (the idle timer, an eviction, the peer): the
            # loop tells no protocol of a connection lost while handshaking, so it leaves the
            # bound here
            self._on_failure()
            self._released()
            return
        self.transport = tls
        early, self._early = self._early or [], None
        self.inner.connection_made(tls)
        for chunk in early:
            super().data_received(chunk)

    def data_received(self, data: bytes) -> None:
        if self._raw is not None:
            self._raw.append(data)
            return
        if self._early is not None:
            self._early.append(data)
            return
        super().data_received(data)

    def eof_received(self) -> bool | None:
        if self._early is not None:
            return None  # the peer ended before its request reached uvicorn: close
        return super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._early is not None:  # still handshaking: ``inner`` never heard of it
            self._released()
            return
        super().connection_lost(exc)


def _feed(raw: asyncio.Transport, data: bytes) -> None:
    """Give ``data``, read from ``raw`` before the loop's TLS protocol took it over, to that
    protocol as if just read: a buffered protocol in asyncio and in uvloop (whose class is no
    ``asyncio.BufferedProtocol`` subclass, hence the cast)."""
    if raw.is_closing():
        return
    proto = cast(asyncio.BufferedProtocol, raw.get_protocol())
    view = memoryview(data)
    while view:
        buf = memoryview(proto.get_buffer(len(view))).cast("B")
        n = min(len(buf), len(view))
        buf[:n] = view[:n]
        proto.buffer_updated(n)
        view = view[n:]
