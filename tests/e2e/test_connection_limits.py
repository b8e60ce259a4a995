"""Idle TCP connections cannot end the node: caps, eviction, idle timeouts (issue 13, item 1).

Once, 1,100 idle connections at the common descriptor limit of 1,024 made the node exit with
"Too many open files". Here a node whose limit is 256 (soft and hard: it cannot raise it) takes
twice that many idle connections on its syslog port or its API port and keeps serving: a new
sender's line arrives, health answers, and what was closed is counted in stats and /metrics.
Then the bounds one by one, on small settings: the cap evicts the oldest silent connection and
refuses a connection when every held one has sent data; a silent connection is closed after
``connection_idle_timeout``; an HTTP response in progress (a subscription) is not idleness.
"""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.nodes import auth_headers
from tests.helpers.ports import free_port
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.e2e

LIMIT = 256  # the node's RLIMIT_NOFILE, soft and hard
LINE = b"<13>Nov 22 00:10:42 web01 app: hello\n"


def _config(tmp_path: Path, source: str = "", http: str = "") -> tuple[Path, int, int]:
    syslog_port, http_port = free_port(), free_port()
    path = tmp_path / "node.yaml"
    path.write_text(
        f"node: {{name: limits, data_dir: {tmp_path / 'data'}}}\n"
        f"http: {{listen: '127.0.0.1:{http_port}'{http}}}\n"
        "sources:\n"
        f"  - {{type: syslog, name: syslog, listen: '127.0.0.1:{syslog_port}', "
        f"protocols: [tcp], tag: syslog{source}}}\n"
    )
    return path, syslog_port, http_port


def _get(url: str, auth: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=auth or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _healthy(base: str) -> bool:
    try:
        return _get(f"{base}/api/v1/health")[0] == 200
    except OSError:
        return False


def _source(base: str, auth: dict[str, str]) -> dict[str, Any]:
    return dict(json.loads(_get(f"{base}/api/v1/stats", auth)[1])["sources"].get("syslog", {}))


def _api(base: str, auth: dict[str, str]) -> dict[str, Any]:
    return dict(json.loads(_get(f"{base}/api/v1/stats", auth)[1])["other"].get("api", {}))


def _closed_by_peer(sock: socket.socket, timeout: float = 30.0) -> bool:
    """Whether the node closes ``sock`` (EOF or reset) within ``timeout``: awaited, not slept."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.fixture
def clients() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def _connect(stack: ExitStack, port: int) -> socket.socket:
    return stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=10))


def _flood(stack: ExitStack, port: int, n: int) -> int:
    """Opens ``n`` idle connections (fewer if the port stops answering); how many opened."""
    for i in range(n):
        try:
            _connect(stack, port)
        except OSError:
            return i
    return n


@pytest.mark.timeout(180)
@pytest.mark.parametrize("target", ["syslog", "api"])
def test_twice_the_descriptor_limit_in_idle_connections_leaves_the_node_serving(
    tmp_path: Path, start_node: Any, clients: ExitStack, target: str
) -> None:
    config, syslog_port, http_port = _config(tmp_path)
    node = start_node(config, "--no-factory", max_open_files=LIMIT)
    base = f"http://127.0.0.1:{http_port}"
    wait_for(lambda: _healthy(base), timeout=60, what="the node to answer health")
    auth = auth_headers(tmp_path / "data")

    opened = _flood(clients, syslog_port if target == "syslog" else http_port, 2 * LIMIT)

    assert node.proc.poll() is None, node.output()
    assert opened == 2 * LIMIT
    assert _healthy(base), node.output()
    sender = _connect(clients, syslog_port)  # a new sender, after the flood
    sender.sendall(LINE)
    wait_for(lambda: _source(base, auth).get("received", 0) >= 1, what="the new sender's line")
    counters = _source if target == "syslog" else _api
    wait_for(  # more than a cap's worth of them went
        lambda: counters(base, auth).get("connections_evicted", 0) >= LIMIT,
        what="evictions counted",
    )
    assert "limits      256 open files" in node.output()
    listener = "source:syslog" if target == "syslog" else "api"
    metrics = _get(f"{base}/metrics", auth)[1].decode()
    assert (
        f'logfactory_connections_closed_total{{listener="{listener}",outcome="evicted"}}' in metrics
    )
    assert node.proc.poll() is None


@pytest.mark.timeout(120)
def test_the_cap_evicts_a_silent_connection_and_refuses_when_all_have_spoken(
    tmp_path: Path, start_node: Any, clients: ExitStack
) -> None:
    config, syslog_port, http_port = _config(tmp_path, source=", max_connections: 3")
    start_node(config, "--no-factory")
    base = f"http://127.0.0.1:{http_port}"
    wait_for(lambda: _healthy(base), timeout=60, what="the node to answer health")
    auth = auth_headers(tmp_path / "data")
    a, b = _connect(clients, syslog_port), _connect(clients, syslog_port)
    for sock in (a, b):
        sock.sendall(LINE)
    wait_for(lambda: _source(base, auth).get("received", 0) == 2, what="two lines")
    silent = _connect(clients, syslog_port)  # the third: full now

    d = _connect(clients, syslog_port)  # takes the silent one's place
    d.sendall(LINE)
    assert _closed_by_peer(silent)
    wait_for(lambda: _source(base, auth).get("received", 0) == 3, what="the newcomer's line")
    late = _connect(clients, syslog_port)  # every connection held has spoken: refused
    assert _closed_by_peer(late)

    for sock in (a, b, d):  # the ones held are untouched
        sock.sendall(LINE)
    wait_for(lambda: _source(base, auth).get("received", 0) == 6, what="three more lines")
    counters = _source(base, auth)
    assert counters["connections_evicted"] == 1
    assert counters["connections_refused"] == 1
    metrics = _get(f"{base}/metrics", auth)[1].decode()
    assert (
        'logfactory_connections_closed_total{listener="source:syslog",outcome="refused"} 1.0'
        in metrics
    )


@pytest.mark.timeout(120)
def test_silent_connections_are_closed_after_the_idle_timeout_but_a_subscription_is_not(
    tmp_path: Path, start_node: Any, clients: ExitStack
) -> None:
    config, syslog_port, http_port = _config(
        tmp_path,
        source=", connection_idle_timeout: 1s",
        http=", connection_idle_timeout: 1s",
    )
    start_node(config, "--no-factory")
    base = f"http://127.0.0.1:{http_port}"
    wait_for(lambda: _healthy(base), timeout=60, what="the node to answer health")
    auth = auth_headers(tmp_path / "data")
    stream = _connect(clients, http_port)  # a subscriber: the server answers, the client waits
    token = auth["Authorization"].encode()
    stream.sendall(
        b"GET /api/v1/subscribe?types=ALERT HTTP/1.1\r\nHost: localhost\r\n"
        b"Authorization: " + token + b"\r\n\r\n"
    )
    stream.settimeout(30)
    head = b""
    while b"\r\n\r\n" not in head and len(head) < 65536:
        head += stream.recv(65536) or b"<EOF>"
    assert head.startswith(b"HTTP/1.1 200 OK"), head
    sender = _connect(clients, syslog_port)
    sender.sendall(LINE)  # spoke once, then silence
    idle_api = _connect(clients, http_port)

    assert _closed_by_peer(sender)
    assert _closed_by_peer(idle_api)
    assert _source(base, auth)["connections_timed_out"] == 1
    assert _api(base, auth)["connections_timed_out"] == 1
    # the subscription's timer was due before the idle API connection's: still open
    stream.setblocking(False)
    with suppress(BlockingIOError):  # nothing to read: open
        assert stream.recv(65536) != b""
