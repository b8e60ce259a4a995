"""The API's TLS (``logfactory.node_tls``): the server context its settings make, and the
handshake behind the connection bound, on a real socket and both event loops. A connection
whose handshake fails, stalls or is cut off leaves the bound (no slot leaks) and its inner
protocol never hears of it; a verified one reaches the inner protocol encrypted, with the
bytes its client sent along with the end of its handshake."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvloop
from tests.helpers.certs import MutualTls, mutual_tls
from tests.helpers.waiting import wait_for

from logfactory.collect.connections import ConnectionLimit
from logfactory.config import load_config
from logfactory.node_start import NodeError
from logfactory.node_tls import TlsGuardedProtocol, api_tls_context

IDLE_S = 0.5


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> MutualTls:
    return mutual_tls(tmp_path_factory.mktemp("tls"))


def _config(tmp_path: Path, http: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(f"node:\n  data_dir: {tmp_path / 'data'}\nhttp:\n{http}")
    return path


def test_the_context_follows_the_settings(tmp_path: Path, certs: MutualTls) -> None:
    assert api_tls_context(load_config(_config(tmp_path, "  listen: 127.0.0.1:8080\n"))) is None
    tls = f"  tls_cert: {certs.server.cert}\n  tls_key: {certs.server.key}\n"
    plain = api_tls_context(load_config(_config(tmp_path, tls)))
    assert plain is not None
    assert plain.minimum_version == ssl.TLSVersion.TLSv1_2
    assert plain.verify_mode == ssl.CERT_NONE
    ca = f"  tls_client_ca: {certs.ca.cert}\n"
    required = api_tls_context(load_config(_config(tmp_path, tls + ca)))
    assert required is not None
    assert required.verify_mode == ssl.CERT_REQUIRED  # the default
    optional = tls + ca + "  tls_client_auth: optional\n"
    lenient = api_tls_context(load_config(_config(tmp_path, optional)))
    assert lenient is not None
    assert lenient.verify_mode == ssl.CERT_OPTIONAL


def test_a_certificate_with_a_key_not_its_own_is_named(tmp_path: Path, certs: MutualTls) -> None:
    http = f"  tls_cert: {certs.server.cert}\n  tls_key: {certs.client.key}\n"
    path = _config(tmp_path, http)
    with pytest.raises(NodeError, match=rf"^{path}:4: http\.tls_cert: cannot load the certif"):
        api_tls_context(load_config(path))


class _Inner(asyncio.Protocol):
    """Echoes what it receives, upper-cased, and records what it heard."""

    def __init__(self, heard: list[str]) -> None:
        self.heard = heard
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.heard.append(f"made tls={transport.get_extra_info('sslcontext') is not None}")

    def data_received(self, data: bytes) -> None:
        self.heard.append(f"data {data!r}")
        assert self.transport is not None
        self.transport.write(data.upper())

    def connection_lost(self, exc: Exception | None) -> None:
        self.heard.append("lost")


class _Server:
    """A TLS listener behind a ConnectionLimit on its own event loop, in a thread."""

    def __init__(self, context: ssl.SSLContext, loop: asyncio.AbstractEventLoop) -> None:
        self.limit = ConnectionLimit("test", 16, IDLE_S)
        self.heard: list[str] = []
        self.failures = 0
        self.loop = loop
        ready = threading.Event()

        def factory() -> TlsGuardedProtocol:
            return TlsGuardedProtocol(self.limit, _Inner(self.heard), context, self._failed)

        async def serve() -> None:
            server = await loop.create_server(factory, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            self._stop = asyncio.Event()
            await self._stop.wait()
            server.close()

        self.thread = threading.Thread(target=lambda: loop.run_until_complete(serve()))
        self.thread.start()
        assert ready.wait(10), "the test server did not start"

    def _failed(self) -> None:
        self.failures += 1

    def open_count(self) -> int:
        return len(self.limit.open)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(params=["asyncio", "uvloop"])
def server(request: pytest.FixtureRequest, certs: MutualTls) -> Iterator[_Server]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs.server.cert, certs.server.key)
    ctx.load_verify_locations(certs.ca.cert)
    ctx.verify_mode = ssl.CERT_REQUIRED
    loop = asyncio.new_event_loop() if request.param == "asyncio" else uvloop.new_event_loop()
    srv = _Server(ctx, loop)
    yield srv
    srv.stop()


def _client(certs: MutualTls, *, cert: bool = True) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs.ca.cert))
    if cert:
        ctx.load_cert_chain(certs.client.cert, certs.client.key)
    return ctx


def test_a_verified_client_reaches_the_inner_protocol_and_leaves_the_bound(
    server: _Server, certs: MutualTls
) -> None:
    for n in range(10):  # each a new connection: early bytes are a race, so try it often
        with (
            socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw,
            _client(certs).wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            tls.sendall(b"hello %d" % n)
            assert tls.recv(100) == b"HELLO %d" % n
    wait_for(lambda: server.heard.count("lost") == 10, 10, "ten closed connections")
    assert server.heard[:3] == ["made tls=True", "data b'hello 0'", "lost"]
    wait_for(lambda: server.open_count() == 0, 10, "the bound to be empty")
    assert server.failures == 0


def _echo_without_a_certificate(server: _Server, certs: MutualTls) -> bytes | None:
    """What a client without a certificate gets back for ``hello``; None: an error (with TLS
    1.3 the refusal shows when the client reads, after its own side of the handshake)."""
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        with _client(certs, cert=False).wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"hello")
            return tls.recv(100)
    except OSError:  # ssl.SSLError is one
        return None
    finally:
        raw.close()


def _ended(sock: socket.socket) -> bool:
    """Whether the server ends ``sock`` (EOF or reset, after any alert) within 10 s."""
    sock.settimeout(10)
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def test_failed_stalled_and_garbage_handshakes_never_reach_inner_nor_hold_a_slot(
    server: _Server, certs: MutualTls
) -> None:
    assert _echo_without_a_certificate(server, certs) in (None, b"")  # refused: no echo
    garbage = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    garbage.sendall(b"GET / HTTP/1.1\r\n\r\n")
    stalled = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    stalled.sendall(b"\x16\x03\x01\x02\x00\x01")  # a ClientHello's first bytes, no more
    try:
        assert _ended(garbage)
        assert _ended(stalled)  # after IDLE_S
    finally:
        garbage.close()
        stalled.close()
    wait_for(lambda: server.open_count() == 0, 10, "the bound to be empty")
    assert server.failures == 3
    assert server.heard == []  # the inner protocol never heard of any of them
