"""TLS for the socket sources (syslog RFC 5425, raw lines): certificates, contexts, the handshake.

Certificates: a source with ``tls_cert`` and ``tls_key`` uses those PEM files. Without them the
node creates one self-signed certificate and key under ``<data_dir>/tls/`` the first time and
reuses it on every later start, so a peer that trusts it once (rsyslog's
``DefaultNetstreamDriverCAFile``) keeps trusting it. Creation holds a lock file and renames each
file into place, so concurrent starts cannot leave a key that does not match its certificate.

The handshake is done here, not by ``loop.create_server(ssl=...)``: asyncio hides a failed
handshake from the server (no callback, nothing logged outside debug mode), and the contract is
that every failed handshake is counted as a rejection. :class:`TlsServerProtocol` wraps the plain
TCP protocol of a source: it decrypts with an ``ssl.SSLObject`` over memory BIOs and hands the
plain bytes to the inner protocol, which sees the TCP transport itself (peer address, flow
control and abort work unchanged). The sources only receive, so application data is never
written; only handshake records, session tickets and alerts go back to the peer.
"""

from __future__ import annotations

import asyncio
import datetime
import fcntl
import ipaddress
import logging
import os
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import cast

from logfactory.config import SocketSourceConfig
from logfactory.errors import TlsConfigError

__all__ = [
    "TlsConfigError",
    "TlsServerProtocol",
    "ensure_self_signed",
    "server_context",
]

log = logging.getLogger(__name__)

CERT_NAME = "node.crt"
KEY_NAME = "node.key"
VALID_DAYS = 3650
HANDSHAKE_TIMEOUT_S = 10.0
_READ = 262_144


def ensure_self_signed(directory: Path, hostname: str | None = None) -> tuple[Path, Path]:
    """``(cert, key)`` paths in ``directory``, creating a self-signed pair if there is none.

    The certificate names ``hostname`` (default: this machine's) as CN and carries the SANs
    ``localhost``, ``127.0.0.1`` and the hostname; it is valid for ten years. An existing pair is
    returned as is (a restart must not change what peers trust)."""
    host = hostname or socket.gethostname()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    cert, key = directory / CERT_NAME, directory / KEY_NAME
    with open(directory / ".lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if cert.exists() and key.exists():
            return cert, key
        key_pem, cert_pem = _self_signed_pem(host)
        _write_atomic(key, key_pem, 0o600)
        # last: its presence means the pair is complete. Owner-only like everything in the
        # data directory (logfactory.owner_only): peers get a copy from the operator
        _write_atomic(cert, cert_pem, 0o600)
    log.warning(
        "created a self-signed TLS certificate %s (key %s) for %r; peers must trust this "
        "certificate (e.g. rsyslog DefaultNetstreamDriverCAFile)",
        cert, key, host,
    )  # fmt: skip
    return cert, key


def _self_signed_pem(host: str) -> tuple[bytes, bytes]:
    # imported here: only a node with a TLS listener and no certificate of its own needs it
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    # RSA rather than EC: every syslog sender's TLS stack (old appliances too) speaks it
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    sans: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    if host != "localhost":
        sans.append(x509.DNSName(host))
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=True,
        data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip
    # CA:TRUE with keyCertSign like ``openssl req -x509``: the certificate is its own trust
    # anchor, which strict verifiers (gnutls, OpenSSL's X509_STRICT) accept only this way. No
    # extended key usage: the same file can then also serve as a client certificate (mutual TLS)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def server_context(
    config: SocketSourceConfig, data_dir: Path, *, hostname: str | None = None, key: str = "tls"
) -> tuple[ssl.SSLContext, Path]:
    """The server context for a source's ``tls_*`` keys, and the certificate it presents.

    Raises :class:`TlsConfigError` naming the key and the file when something cannot work, so a
    typo is a refusal to start, not a listener whose every handshake fails."""
    if (config.tls_cert is None) != (config.tls_key is None):
        raise TlsConfigError(f"{key}: tls_cert and tls_key must be given together (or neither)")
    if config.tls_cert is not None and config.tls_key is not None:
        cert, pkey = Path(config.tls_cert), Path(config.tls_key)
        for field, path in (("tls_cert", cert), ("tls_key", pkey)):
            if not path.is_file():
                raise TlsConfigError(f"{key}: {field} {str(path)!r} is not a readable file")
    else:
        cert, pkey = ensure_self_signed(data_dir / "tls", hostname)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, pkey)
    except (ssl.SSLError, OSError) as exc:
        raise TlsConfigError(
            f"{key}: cannot load certificate {str(cert)!r} with key {str(pkey)!r}: {exc}"
        ) from exc
    if config.tls_verify_client and config.tls_ca is None:
        raise TlsConfigError(f"{key}: tls_verify_client needs tls_ca (the CA of the clients)")
    if config.tls_ca is not None:
        try:
            ctx.load_verify_locations(cafile=config.tls_ca)
        except (ssl.SSLError, OSError) as exc:
            raise TlsConfigError(f"{key}: cannot load tls_ca {config.tls_ca!r}: {exc}") from exc
        # with a CA but no requirement, a client certificate is checked when one is offered
        ctx.verify_mode = ssl.CERT_REQUIRED if config.tls_verify_client else ssl.CERT_OPTIONAL
    return ctx, cert


class TlsServerProtocol(asyncio.Protocol):
    """Server side of one TLS connection in front of a plain protocol (see the module docstring).

    ``on_failure(reason, peer)`` hears about each handshake that fails, times out or is cut off
    by the peer; the connection is then aborted and ``inner`` never sees it. A connection closed
    before sending a byte (a port probe) is not a failure. ``live`` (optional) holds every
    connection still handshaking, so that a stopping listener can :meth:`abort` them.
    """

    def __init__(
        self,
        context: ssl.SSLContext,
        inner: asyncio.Protocol,
        on_failure: Callable[[str, str], None],
        *,
        live: set[TlsServerProtocol] | None = None,
        handshake_timeout: float = HANDSHAKE_TIMEOUT_S,
    ) -> None:
        self.inner = inner
        self.peer = "-"
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._on_failure = on_failure
        self._live = live
        self._timeout = handshake_timeout
        self._timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.Transport | None = None
        self._state = 0  # 0 handshaking, 1 open (inner connected), 2 done
        self._got_bytes = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport (uvloop's is not an asyncio.Transport subclass, so no isinstance)
        self._transport = transport = cast(asyncio.Transport, transport)
        peername = transport.get_extra_info("peername")
        if peername:
            self.peer = f"{peername[0]}:{peername[1]}"
        if self._live is not None:
            self._live.add(self)
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._timeout, self._fail, "TLS handshake timed out")

    def data_received(self, data: bytes) -> None:
        if self._state == 2:
            return
        self._got_bytes = True
        self._incoming.write(data)
        if self._state == 0:
            try:
                self._ssl.do_handshake()
            except ssl.SSLWantReadError:
                self._flush()
                return
            except Exception as exc:  # any failure of a peer's handshake is that peer's problem
                self._flush()  # the alert tells the peer why
                self._fail(f"TLS handshake failed: {exc}")
                return
            self._opened()
        chunks: list[bytes] = []
        eof = False
        while True:
            try:
                chunk = self._ssl.read(_READ)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:  # the peer's close_notify
                eof = True
                break
            except Exception as exc:
                if chunks:
                    self.inner.data_received(b"".join(chunks))
                self._close(f"TLS error: {exc}")
                return
            if not chunk:
                eof = True
                break
            chunks.append(chunk)
        self._flush()
        if chunks:
            self.inner.data_received(b"".join(chunks))
        if eof and self._state == 1 and self._transport is not None:
            self._transport.close()

    def _opened(self) -> None:
        self._state = 1
        if self._timer is not None:
            self._timer.cancel()
        if self._live is not None:
            self._live.discard(self)
        self._flush()
        assert self._transport is not None
        self.inner.connection_made(self._transport)

    def _flush(self) -> None:
        out = self._outgoing.read()
        if out and self._transport is not None and not self._transport.is_closing():
            self._transport.write(out)

    def _fail(self, reason: str) -> None:
        if self._state != 0:
            return
        self._state = 2
        if self._live is not None:
            self._live.discard(self)
        if self._timer is not None:
            self._timer.cancel()
        self._on_failure(reason, self.peer)
        if self._transport is not None:
            self._transport.abort()

    def _close(self, reason: str) -> None:
        log.debug("TLS connection from %s closed: %s", self.peer, reason)
        if self._transport is not None:
            self._transport.abort()  # connection_lost tells the inner protocol

    def abort(self) -> None:
        """Drop a connection that has not finished its handshake (at a stop: not a rejection)."""
        if self._state == 0:
            self._state = 2
            if self._timer is not None:
                self._timer.cancel()
            if self._transport is not None:
                self._transport.abort()

    def eof_received(self) -> bool | None:
        return None  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if self._state == 0:
            if self._got_bytes:
                self._fail("connection closed during the TLS handshake")
            else:  # a port probe or health check: nothing was attempted, nothing to count
                self._state = 2
                if self._timer is not None:
                    self._timer.cancel()
        if self._live is not None:
            self._live.discard(self)
        if self._state == 1:
            self._state = 2
            self.inner.connection_lost(exc)
