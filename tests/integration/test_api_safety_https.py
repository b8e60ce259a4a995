"""A real ``logfactory serve`` node over HTTPS: HSTS and the secure headers on the wire, and the
Host allow-list against hostile requests written byte by byte (no client library tidies them)."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers.nodes import Proc, auth_headers
from tests.helpers.ports import free_port
from tests.helpers.waiting import wait_for

from logfactory.collect.tls import ensure_self_signed

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SECURE = (
    b"x-content-type-options: nosniff",
    b"x-frame-options: DENY",
    b"referrer-policy: no-referrer",
    b"cross-origin-opener-policy: same-origin",
    b"content-security-policy: default-src 'self'; frame-ancestors 'none'",
)
HSTS = b"strict-transport-security: max-age=31536000"


class Https:
    """Requests as raw bytes over TLS to one node, trusting its self-signed certificate."""

    def __init__(self, port: int, cafile: Path) -> None:
        self.port = port
        self.context = ssl.create_default_context(cafile=str(cafile))
        self.auth = b""  # the ``Authorization`` line of the node's admin token, once it has one

    def send(self, request: bytes) -> tuple[int, bytes, bytes]:
        """(status, head in lower case, body) of the answer to ``request``."""
        with (
            socket.create_connection(("127.0.0.1", self.port), timeout=10) as raw,
            self.context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            tls.sendall(request)
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1]), head.lower(), body

    def get(self, path: str, *headers: bytes) -> tuple[int, bytes, bytes]:
        lines = [f"GET {path} HTTP/1.1".encode(), *headers, b"Connection: close", b"", b""]
        return self.send(b"\r\n".join(lines))

    def answers(self) -> bool:
        try:
            return self.get("/api/v1/health", b"Host: localhost")[0] in (200, 503)
        except OSError:
            return False


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Https, Proc]]:
    tmp_path = tmp_path_factory.mktemp("safe")
    cert, key = ensure_self_signed(tmp_path / "tls", "safe")  # SANs: localhost, 127.0.0.1
    port = free_port()
    config = tmp_path / "safe.yaml"
    config.write_text(
        f"node: {{name: safe, data_dir: '{tmp_path / 'data'}'}}\n"
        f"http: {{listen: '127.0.0.1:{port}', tls_cert: '{cert}', tls_key: '{key}'}}\n"
    )
    proc = Proc("serve", config, tmp_path / "serve.log")
    https = Https(port, cert)
    try:
        wait_for(lambda: https.answers() or proc.proc.poll() is not None, 60, "the node over HTTPS")
        assert proc.proc.poll() is None, proc.output()
        https.auth = f"Authorization: {auth_headers(tmp_path / 'data')['Authorization']}".encode()
        yield https, proc
    finally:
        assert proc.stop() == 0, proc.output()


def refused_hosts(https: Https) -> int:
    status, _, body = https.get(
        "/api/v1/stats", f"Host: localhost:{https.port}".encode(), https.auth
    )
    assert status == 200
    return int(json.loads(body)["other"]["api"]["refused_host"])


def test_over_https_every_answer_has_hsts_and_the_secure_headers(
    node: tuple[Https, Proc],
) -> None:
    https, _ = node
    for path in ("/api/v1/stats", "/api/v1/no-such-route", "/docs"):
        _status, head, _ = https.get(path, f"Host: 127.0.0.1:{https.port}".encode(), https.auth)
        for header in (HSTS, *SECURE):
            assert header.lower() in head, (path, header)


@pytest.mark.parametrize(
    ("host", "error"),
    [
        (b"Host: evil.example", b"host 'evil.example' is not served here"),
        (b"Host: ", b"the request's Host header is empty"),
        (b"Host: \xff\xfe.example", b"is not served here; add it to http.allowed_hosts"),
        (b"Host: " + b"h" * 10_000, b"is not served here"),
        (None, b"the request has no Host header"),  # HTTP/1.0 allows it; the node does not
    ],
)
def test_hostile_hosts_are_a_clear_400_and_the_node_serves_on(
    node: tuple[Https, Proc], host: bytes | None, error: bytes
) -> None:
    https, proc = node
    before = refused_hosts(https)
    if host is None:
        status, head, body = https.send(b"GET /api/v1/stats HTTP/1.0\r\n\r\n")
    else:
        status, head, body = https.get("/api/v1/stats", host)
    assert status == 400
    assert error in json.loads(body)["error"].encode()
    assert len(body) < 300
    assert HSTS in head
    assert refused_hosts(https) == before + 1
    assert "Traceback" not in proc.output()


def test_several_host_headers_are_refused_before_the_app(node: tuple[Https, Proc]) -> None:
    https, _ = node
    # uvicorn's HTTP parser (h11) answers these 400 itself; the app never sees the request
    status, _, _ = https.get("/api/v1/stats", b"Host: localhost", b"Host: evil.example")
    assert status == 400
