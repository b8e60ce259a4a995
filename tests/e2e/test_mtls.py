"""Mutual TLS on the HTTP API (issue 15, "Transport security"), against real node processes
with certificates made at test time (tests/helpers/certs.py): a CA, the node's certificate it
signs, a client it signs, and a client of a foreign CA.

``tls_client_auth: required`` answers only the CA's clients (no certificate, or a foreign one:
no HTTP answer at all); ``optional`` answers a client without a certificate but still refuses a
foreign one. An edge collector shows its certificate and its records arrive on the central
bus. Clients that stall mid-handshake or send garbage instead of a ClientHello do not stop
anyone else being served, and a stalled handshake is closed after ``connection_idle_timeout``
(not after the event loop's own 60 s). A file that cannot be loaded stops the start, named.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.certs import CertFiles, MutualTls, mutual_tls
from tests.helpers.nodes import NodeProcess, auth_headers
from tests.helpers.ports import free_port, free_port_both
from tests.helpers.waiting import wait_for
from tests.kafka_broker import port_open

from logfactory.bus.base import BusError
from logfactory.bus.http_ship import HttpShipProducer, ShipTarget
from logfactory.bus.local import LocalBus
from logfactory.record import decode_record, encode_record, make_record

pytestmark = pytest.mark.e2e

TOKEN = "edge-token-mtls"
IDLE_S = 2  # the central node's connection_idle_timeout
Start = Callable[..., NodeProcess]


@pytest.fixture
def certs(tmp_path: Path) -> MutualTls:
    return mutual_tls(tmp_path / "tls")


def _central(tmp_path: Path, certs: MutualTls, auth: str = "required") -> tuple[Path, int]:
    port = free_port()
    cfg = tmp_path / "central.yaml"
    cfg.write_text(
        f"node: {{name: central, data_dir: {tmp_path / 'central'}}}\n"
        "http:\n"
        f"  listen: '127.0.0.1:{port}'\n"
        f"  tls_cert: '{certs.server.cert}'\n"
        f"  tls_key: '{certs.server.key}'\n"
        f"  tls_client_ca: '{certs.ca.cert}'\n"
        f"  tls_client_auth: {auth}\n"
        f"  connection_idle_timeout: {IDLE_S}s\n"
        f"sources:\n  - {{type: http, name: edges, tag: http, token: {TOKEN}}}\n"
    )
    return cfg, port


def _context(certs: MutualTls, client: CertFiles | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs.ca.cert))
    if client is not None:
        ctx.load_cert_chain(client.cert, client.key)
    return ctx


def _request(
    port: int,
    path: str,
    certs: MutualTls,
    client: CertFiles | None,
    auth: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """Every HTTP call of this module: GET ``path`` over TLS showing ``client``'s certificate
    (None: none), with the credential ``auth``. Raises when the node gives no HTTP answer."""
    conn = http.client.HTTPSConnection(
        "127.0.0.1", port, timeout=10, context=_context(certs, client)
    )
    try:
        conn.request("GET", path, headers=auth or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _no_answer(port: int, certs: MutualTls, client: CertFiles | None) -> None:
    """Fails the test when ``client`` gets an HTTP answer from the health endpoint: the node
    must refuse the handshake or end the connection (with TLS 1.3 the client's side of the
    handshake finishes first, so the refusal shows when it reads the answer)."""
    try:
        status, body = _request(port, "/api/v1/health", certs, client)
    except (OSError, http.client.HTTPException):  # ssl.SSLError is an OSError
        return
    raise AssertionError(f"answered {status}: {body[:200]!r}")


def _healthy(port: int, certs: MutualTls) -> bool:
    try:
        return _request(port, "/api/v1/health", certs, certs.client)[0] == 200
    except (OSError, http.client.HTTPException):
        return False


def _up(node: NodeProcess, port: int, certs: MutualTls) -> None:
    wait_for(lambda: _healthy(port, certs) or node.proc.poll() is not None, 60, "the central node")
    assert node.proc.poll() is None, node.output()


def _api_stats(port: int, certs: MutualTls, auth: dict[str, str]) -> dict[str, Any]:
    status, body = _request(port, "/api/v1/stats", certs, certs.client, auth)
    assert status == 200, body
    return dict(json.loads(body)["other"].get("api", {}))


@pytest.fixture
def start_collect(start_node: Start) -> Callable[[Path], NodeProcess]:
    return lambda config: start_node(config, "--quiet", role="collect")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_required_client_certificates_answer_only_the_cas_clients(
    tmp_path: Path,
    certs: MutualTls,
    start_collect: Callable[[Path], NodeProcess],
    monkeypatch: pytest.MonkeyPatch,
    loop: str,
) -> None:
    monkeypatch.setenv("LOGFACTORY_EVENT_LOOP", loop)  # the node runs on either loop
    cfg, port = _central(tmp_path, certs, "required")
    _up(start_collect(cfg), port, certs)

    for _ in range(3):
        _no_answer(port, certs, None)
        _no_answer(port, certs, certs.foreign_client)
    # each on a new connection: the handshake's first bytes can reach the node before its TLS
    # layer is in place (on uvloop they did, and one connection in three failed)
    statuses = [_request(port, "/api/v1/health", certs, certs.client)[0] for _ in range(30)]
    assert statuses == [200] * 30
    auth = auth_headers(tmp_path / "central")  # a certificate is no credential: a token too
    assert _api_stats(port, certs, auth).get("tls_handshakes_failed", 0) >= 6
    status, metrics = _request(port, "/metrics", certs, certs.client, auth)
    assert status == 200
    counted = [
        line for line in metrics.decode().splitlines() if "tls_handshakes_failed_total" in line
    ]
    assert counted, metrics[:2000]
    assert float(counted[-1].rsplit(" ", 1)[1]) >= 6


@pytest.mark.timeout(120)
def test_optional_client_certificates_answer_none_but_refuse_a_foreign_one(
    tmp_path: Path, certs: MutualTls, start_node: Start
) -> None:
    cfg, port = _central(tmp_path, certs, "optional")
    node = start_node(cfg, role="collect")  # not quiet: with its banner
    _up(node, port, certs)
    wait_for(lambda: "client certificates optional" in node.output(), 30, "the banner's line")

    assert _request(port, "/api/v1/health", certs, None)[0] == 200
    assert _request(port, "/api/v1/health", certs, certs.client)[0] == 200
    _no_answer(port, certs, certs.foreign_client)
    assert _request(port, "/api/v1/health", certs, None)[0] == 200


def _edge(tmp_path: Path, central_port: int, certs: MutualTls) -> tuple[Path, int]:
    port = free_port_both()
    cfg = tmp_path / "edge.yaml"
    cfg.write_text(
        f"node: {{name: edge1, data_dir: {tmp_path / 'edge'}}}\n"
        "bus:\n"
        "  type: http\n"
        "  http:\n"
        f"    url: 'https://127.0.0.1:{central_port}/api/v1/ingest'\n"
        f"    token: {TOKEN}\n"
        f"    ca_file: '{certs.ca.cert}'\n"
        f"    client_cert: '{certs.client.cert}'\n"
        f"    client_key: '{certs.client.key}'\n"
        f"sources:\n  - {{type: syslog, name: syslog, tag: syslog, "
        f"listen: '127.0.0.1:{port}', protocols: [tcp]}}\n"
    )
    return cfg, port


def _on_central(tmp_path: Path) -> list[str]:
    bus = LocalBus(tmp_path / "central" / "bus")
    try:
        consumer = bus.consumer(None, ["logs.raw"], "earliest")
        lines: list[str] = []
        while batch := consumer.poll(1000, 0.2):
            for m in batch:
                line = decode_record(m.value).line
                lines.append(line.decode() if isinstance(line, bytes) else line)
        consumer.close()
        return lines
    finally:
        bus.close()


@pytest.mark.timeout(180)
def test_an_edge_ships_with_its_client_certificate_and_one_without_is_refused(
    tmp_path: Path, certs: MutualTls, start_collect: Callable[[Path], NodeProcess]
) -> None:
    central_cfg, central_port = _central(tmp_path, certs, "required")
    _up(start_collect(central_cfg), central_port, certs)
    edge_cfg, edge_port = _edge(tmp_path, central_port, certs)
    edge = start_collect(edge_cfg)
    wait_for(lambda: port_open(edge_port) or edge.proc.poll() is not None, 30, "the edge's port")
    assert edge.proc.poll() is None, edge.output()

    for n in range(10):
        subprocess.run(
            ["logger", "-n", "127.0.0.1", "-P", str(edge_port), "-T", "--rfc5424",
             "-t", "shipper", f"mtls line {n}"],
            check=True,
        )  # fmt: skip
    wanted = [f"mtls line {n}" for n in range(10)]

    def arrived() -> list[str]:
        return [line[line.index("mtls line") :] for line in _on_central(tmp_path) if "mtls" in line]

    wait_for(lambda: len(arrived()) >= 10, timeout=60, what="10 lines on the central bus")
    assert sorted(arrived(), key=lambda t: int(t.rsplit(" ", 1)[1])) == wanted

    # the same edge without its certificate: the token alone gets it nowhere
    url = f"https://127.0.0.1:{central_port}/api/v1/ingest"
    anonymous = HttpShipProducer(ShipTarget(url, token=TOKEN, ca_file=str(certs.ca.cert)))
    try:
        anonymous.produce("logs.raw", encode_record(make_record("syslog", "h1", "no cert")))
        wait_for(lambda: anonymous._error is not None, timeout=30, what="the refusal")
        with pytest.raises(BusError):
            anonymous.flush(0.1)
        assert anonymous.pending() == 1  # held, never dropped
    finally:
        anonymous.close()
    assert not [line for line in _on_central(tmp_path) if "no cert" in line]
    assert edge.stop() == 0, edge.output()


def _closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """Whether the node ends ``sock`` (EOF or reset, after any alert it sends) within
    ``timeout``: awaited by the socket's own timeout, not slept."""
    deadline = time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if sock.recv(4096) == b"":
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return False


@pytest.fixture
def sockets() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


# the first bytes of a TLS ClientHello (record header, then the handshake header announcing 508
# bytes): the node waits for the rest, which never comes
PARTIAL_HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 16


@pytest.mark.timeout(180)
@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_stalled_and_garbage_handshakes_do_not_stop_others_and_are_bounded(
    tmp_path: Path,
    certs: MutualTls,
    start_collect: Callable[[Path], NodeProcess],
    sockets: ExitStack,
    monkeypatch: pytest.MonkeyPatch,
    loop: str,
) -> None:
    monkeypatch.setenv("LOGFACTORY_EVENT_LOOP", loop)  # the node runs on either loop
    cfg, port = _central(tmp_path, certs, "required")
    _up(start_collect(cfg), port, certs)

    def connect() -> socket.socket:
        return sockets.enter_context(socket.create_connection(("127.0.0.1", port), timeout=10))

    stalled = [connect() for _ in range(20)]
    for sock in stalled:
        sock.sendall(PARTIAL_HELLO)
    garbage = connect()
    garbage.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")  # plain HTTP, no TLS
    noise = connect()
    noise.sendall(bytes(range(256)) * 4)

    # everyone else is served meanwhile
    for _ in range(3):
        assert _request(port, "/api/v1/health", certs, certs.client)[0] == 200
    assert _closed_by_peer(garbage, 30), "plain HTTP on the TLS port was not ended"
    assert _closed_by_peer(noise, 30), "garbage instead of a ClientHello was not ended"
    # a stalled handshake ends after the idle timeout, well before the loop's own 60 s
    for sock in stalled:
        assert _closed_by_peer(sock, 30), "a stalled handshake was kept open"
    assert _request(port, "/api/v1/health", certs, certs.client)[0] == 200
    api = _api_stats(port, certs, auth_headers(tmp_path / "central"))
    assert api.get("connections_timed_out", 0) >= 20
    assert api.get("tls_handshakes_failed", 0) >= 22


def _start_fails(config: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "logfactory", "collect", "-c", str(config), "--quiet"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0, done.stdout + done.stderr
    return done.stderr


@pytest.mark.timeout(120)
def test_a_client_ca_or_client_certificate_that_cannot_be_loaded_stops_the_start(
    tmp_path: Path, certs: MutualTls
) -> None:
    cfg, _port = _central(tmp_path, certs)
    missing = tmp_path / "nope" / "ca.pem"
    cfg.write_text(cfg.read_text().replace(str(certs.ca.cert), str(missing)))
    err = _start_fails(cfg)
    assert f"{cfg}:6: http.tls_client_ca: cannot load the client CA bundle {missing}" in err, err
    assert "No such file or directory" in err
    assert "give a readable PEM file" in err

    not_pem = tmp_path / "empty.pem"
    not_pem.write_text("not a certificate\n")
    cfg.write_text(cfg.read_text().replace(str(missing), str(not_pem)))
    err = _start_fails(cfg)
    assert f"{cfg}:6: http.tls_client_ca: cannot load the client CA bundle {not_pem}" in err, err

    edge_cfg, _edge_port = _edge(tmp_path, free_port(), certs)
    gone = tmp_path / "gone.crt"
    edge_cfg.write_text(edge_cfg.read_text().replace(str(certs.client.cert), str(gone)))
    err = _start_fails(edge_cfg)
    assert f"bus.http.client_cert {gone}: cannot load it with the key {certs.client.key}" in err
    assert "No such file or directory" in err, err

    # a key that is not the certificate's
    edge_cfg.write_text(
        edge_cfg.read_text()
        .replace(str(gone), str(certs.client.cert))
        .replace(str(certs.client.key), str(certs.foreign_client.key))
    )
    err = _start_fails(edge_cfg)
    assert f"bus.http.client_cert {certs.client.cert}: cannot load it with the key" in err, err
