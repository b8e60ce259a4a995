"""Request heads bounded in size and in time, on a real node (``logfactory serve``, uvicorn):
too large is 431, too slow is 408, both close the connection and are counted, and the node
serves everyone else meanwhile (issue 15, "bounded request headers")."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.nodes import Proc, answers, auth_headers
from tests.helpers.ports import free_port
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.integration

HEAD_LIMIT = 16 * 1024  # the default http.max_header_bytes


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[str], int]]:
    """Starts ``logfactory serve`` with defaults but ``connection_idle_timeout``; its API port.
    The node must outlive the test."""
    procs: list[Proc] = []

    def start(idle_timeout: str) -> int:
        port = free_port()
        config = tmp_path / "node.yaml"
        config.write_text(
            f"node: {{name: heads, data_dir: {tmp_path / 'data'}}}\n"
            f"http: {{listen: '127.0.0.1:{port}', connection_idle_timeout: {idle_timeout}}}\n"
        )
        proc = Proc("serve", config, tmp_path / "node.log")
        procs.append(proc)
        wait_for(lambda: answers(port) or proc.proc.poll() is not None, 60, "the API")
        assert proc.proc.poll() is None, proc.output()
        return port

    try:
        yield start
        for proc in procs:
            assert proc.proc.poll() is None, proc.output()
    finally:
        for proc in procs:
            proc.stop()


@pytest.fixture
def conns() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def connect(stack: ExitStack, port: int) -> socket.socket:
    return stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=30))


def response(sock: socket.socket) -> tuple[int, bytes, bool]:
    """The status and body of the next response on ``sock``, and whether the server closed
    the connection after it (read to EOF when it said ``connection: close``)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a response: {buf!r}"
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
    length = int(fields[b"content-length"])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed inside the body"
        body += chunk
    closed = False
    if fields.get(b"connection") == b"close":
        closed = sock.recv(1) == b""
    return int(head.split()[1]), body, closed


def get(sock: socket.socket, path: str, extra: bytes = b"") -> None:
    sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\n" + extra + b"\r\n")


def api_counters(port: int, auth: dict[str, str]) -> dict[str, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/stats", headers=auth)
    with urllib.request.urlopen(request, timeout=10) as r:
        return dict(json.loads(r.read())["other"].get("api", {}))


def metrics(port: int, auth: dict[str, str]) -> str:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=auth)
    with urllib.request.urlopen(request, timeout=10) as r:
        return str(r.read().decode())


def headers_of(total: int) -> bytes:
    """Header lines of about ``total`` bytes, 1 KB each."""
    return b"".join(b"X-Filler-%03d: %s\r\n" % (i, b"a" * 1000) for i in range(total // 1024))


@pytest.mark.timeout(120)
def test_64_kb_of_headers_are_refused_while_another_connection_is_served(
    serve: Callable[[str], int], conns: ExitStack, tmp_path: Path
) -> None:
    node = serve("60s")
    auth = auth_headers(tmp_path / "data")
    big = connect(conns, node)
    big.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\n" + headers_of(8 * 1024))

    other = connect(conns, node)  # the big head is half sent: someone else meanwhile
    get(other, "/api/v1/health")
    assert response(other)[0] == 200

    # the rest of the 64 KB; the node may have answered and closed before it is all sent
    with suppress(BrokenPipeError, ConnectionResetError):
        big.sendall(headers_of(56 * 1024) + b"\r\n")
    status, body, closed = response(big)
    assert status == 431
    assert json.loads(body)["error"] == (
        f"the request line and headers are larger than {HEAD_LIMIT} bytes"
    )
    assert closed
    get(other, "/api/v1/health")  # the other connection is untouched
    assert response(other)[0] == 200
    assert api_counters(node, auth)["limited_header_bytes"] == 1
    assert 'logfactory_api_limited_total{limit="header_bytes"} 1.0' in metrics(node, auth)


@pytest.mark.timeout(120)
def test_a_head_within_the_bound_is_served_and_a_later_one_on_the_connection_is_bounded(
    serve: Callable[[str], int], conns: ExitStack
) -> None:
    node = serve("60s")
    sock = connect(conns, node)
    get(sock, "/api/v1/health", headers_of(15 * 1024))  # just under 16 KiB
    assert response(sock)[0] == 200
    get(sock, "/api/v1/health", headers_of(17 * 1024))  # the next request, same connection
    status, _, closed = response(sock)
    assert (status, closed) == (431, True)


@pytest.mark.timeout(120)
def test_a_head_trickled_byte_by_byte_is_cut_at_the_idle_timeout(
    serve: Callable[[str], int], conns: ExitStack, tmp_path: Path
) -> None:
    node = serve("1s")
    auth = auth_headers(tmp_path / "data")
    slow = connect(conns, node)
    done = threading.Event()

    def trickle() -> None:
        """The attacker's pace: a byte every 50 ms, never silent for the 1 s idle timeout,
        an endless header; stops when the node has closed the connection."""
        line = b"GET /api/v1/health HTTP/1.1\r\nX-Slow: " + b"a" * 100_000
        for byte in line:
            if done.is_set():
                return
            try:
                slow.send(bytes([byte]))
            except OSError:
                return
            time.sleep(0.05)

    sender = threading.Thread(target=trickle, daemon=True)
    sender.start()
    try:
        status, body, closed = response(slow)  # the socket's 30 s timeout bounds the wait
    finally:
        done.set()
        sender.join(timeout=10)
    assert status == 408
    assert b"did not arrive within 1 s" in body
    assert closed
    assert api_counters(node, auth)["connections_timed_out"] == 1
    assert 'outcome="timed_out"} 1.0' in metrics(node, auth)
    fresh = connect(conns, node)
    get(fresh, "/api/v1/health")
    assert response(fresh)[0] == 200


@pytest.mark.timeout(120)
def test_only_the_head_counts_never_the_body(
    serve: Callable[[str], int], conns: ExitStack, tmp_path: Path
) -> None:
    node = serve("60s")
    token = auth_headers(tmp_path / "data")["Authorization"].encode()
    body = b"a line of the body\n" * 10_000  # 190 KB: far past the head's bound
    sock = connect(conns, node)
    sock.sendall(  # head and body in one write: most of the first read is body
        b"POST /api/v1/ingest?source=t HTTP/1.1\r\nHost: localhost\r\n"
        + b"Authorization: "
        + token
        + b"\r\n"
        + headers_of(15 * 1024)
        + b"content-length: %d\r\n\r\n" % len(body)
        + body
    )
    status, answer, _ = response(sock)
    assert status == 200, answer
    assert json.loads(answer)["accepted"] == 10_000
