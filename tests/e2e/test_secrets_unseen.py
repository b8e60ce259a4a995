"""Secrets never in logs, stats or errors (issue 15, "Files"; this held before the issue: the
test keeps it so).

One node whose configuration holds distinctive secrets (an http source's token, SNMPv3 auth and
privacy keys, the private key of its HTTPS certificate; the admin token and password it makes on
its first start too) and one edge collector whose
``bus.http.token`` is a secret the node does not know, both real processes, are driven through
failures that produce log lines and error answers: a wrong bearer token, a body that does not
decompress, a review without the token, a plain-HTTP request to the HTTPS port, an SNMPv3 trap
with the wrong keys, the edge's every shipment refused; and ``logfactory check`` of the same
configuration with an error next to (or on) a secret's line. Then no secret may appear in the
processes' output, any file under either stats directory, ``/metrics``, ``/api/v1/stats``, an
error body or ``check``'s output. Each failure is confirmed to have happened (its status, its
counter, its log line) so that an absent secret is not merely an absent failure.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.nodes import NodeProcess, auth_headers
from tests.helpers.ports import free_port, free_port_both
from tests.helpers.waiting import wait_for

from logfactory.access.bootstrap import ADMIN_FILE
from logfactory.collect.tls import ensure_self_signed

pytestmark = pytest.mark.e2e

Start = Callable[..., NodeProcess]

INGEST_TOKEN = "sEcReT-ingest-4f1c9a7e"
SHIP_TOKEN = "sEcReT-ship-8b2d6e03"  # the edge's: the node does not know it
AUTH_KEY = "sEcReT-auth-35c7e1d9"
PRIV_KEY = "sEcReT-priv-92ab04f6"
SHORT_KEY = "Zx9-q7k"  # too short for SNMP: the error that refuses it must not quote it
SENDER_ENGINE = "0x8000000001020304"
E = "1.3.6.1.4.1.8072.2.3"


def _central(tmp_path: Path, cert: Path, key: Path) -> tuple[str, int, int]:
    """The node's configuration text, its HTTPS port and its SNMP port."""
    http, snmp = free_port(), free_port_both()
    text = f"""\
node: {{name: central, data_dir: '{tmp_path / "central"}'}}
http:
  listen: 127.0.0.1:{http}
  tls_cert: '{cert}'
  tls_key: '{key}'
sources:
  - type: http
    name: ingest
    tag: syslog
    token: {INGEST_TOKEN}
  - type: snmp
    name: traps
    tag: snmp
    listen: 127.0.0.1:{snmp}
    v3_users:
      - user: logfactory
        auth_key: {AUTH_KEY}
        priv_key: {PRIV_KEY}
        engine_id: '{SENDER_ENGINE}'
workshops:
  syslog: {{format: syslog}}
"""
    return text, http, snmp


def _edge(tmp_path: Path, http: int, cert: Path) -> Path:
    (tmp_path / "edge.log").write_text("Nov 22 00:15:51 web01 app: to be shipped\n")
    path = tmp_path / "edge.yaml"
    path.write_text(
        f"node: {{name: edge1, data_dir: '{tmp_path / 'edge'}'}}\n"
        f"bus: {{type: http, http: {{url: 'https://localhost:{http}/api/v1/ingest', "
        f"token: {SHIP_TOKEN}, ca_file: '{cert}'}}}}\n"
        "collector: {spool_flush_timeout: 1s}\n"
        "sources:\n"
        f"  - {{type: file, name: files, tag: syslog, paths: ['{tmp_path / 'edge.log'}']}}\n"
    )
    return path


def _call(
    base: str,
    tls: ssl.SSLContext,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """Every request of this test: its status and body (an error's too), with ``headers`` (the
    credential, when the request is to have one, among them)."""
    request = urllib.request.Request(base + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10, context=tls) as answer:
            return int(answer.status), answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _stats(base: str, tls: ssl.SSLContext, auth: dict[str, str]) -> dict[str, Any]:
    status, body = _call(base, tls, "GET", "/api/v1/stats", headers=auth)
    assert status == 200, body
    found: dict[str, Any] = json.loads(body)
    return found


def _source_count(stats: dict[str, Any], source: str, counter: str) -> int:
    return int(stats["sources"].get(source, {}).get(counter, 0))


def _secrets(key: Path) -> list[str]:
    """The secret strings: tokens, SNMP keys, and every line of the private key's PEM body."""
    pem = key.read_text().splitlines()
    return [INGEST_TOKEN, SHIP_TOKEN, AUTH_KEY, PRIV_KEY, SHORT_KEY, "PRIVATE KEY",
            *(line for line in pem if line and not line.startswith("-----"))]  # fmt: skip


def _leaks(texts: dict[str, str], secrets: list[str]) -> dict[str, list[str]]:
    """Where any secret shows: place -> the secrets found there (short for the report)."""
    found = {where: [s[:24] for s in secrets if s in text] for where, text in texts.items()}
    return {where: hits for where, hits in found.items() if hits}


def _check(tmp_path: Path, name: str, text: str) -> tuple[int, str]:
    path = tmp_path / name
    path.write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "logfactory", "check", str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def _bad_configs(good: str) -> dict[str, tuple[str, str]]:
    """Configurations with an error beside or on a secret's line -> (text, what the error
    names)."""
    token_line = f"    token: {INGEST_TOKEN}\n"
    priv_line = f"        priv_key: {PRIV_KEY}\n"
    return {
        "unknown-key.yaml": (
            good.replace(token_line, token_line + "    tokn: typo\n"),
            "unknown key 'tokn'",
        ),
        "unclosed-quote.yaml": (
            good.replace(token_line, f'    token: "{INGEST_TOKEN}\n'),
            "not valid YAML",
        ),
        "token-a-list.yaml": (
            good.replace(token_line, f"    token: [{INGEST_TOKEN}]\n"),
            "sources[0].token",
        ),
        "short-key.yaml": (
            good.replace(priv_line, f"        priv_key: {SHORT_KEY}\n"),
            "at least 8 characters",
        ),
    }


@pytest.mark.timeout(240)
def test_no_secret_in_logs_stats_metrics_errors_or_check_output(
    tmp_path: Path, start_node: Start
) -> None:
    cert, key = ensure_self_signed(tmp_path / "keys", "localhost")
    secrets = _secrets(key)
    text, http, snmp = _central(tmp_path, cert, key)
    config = tmp_path / "central.yaml"
    config.write_text(text)
    tls = ssl.create_default_context(cafile=str(cert))
    base = f"https://localhost:{http}"
    node = start_node(config, "--quiet")

    def up() -> bool:
        try:
            return _call(base, tls, "GET", "/api/v1/health")[0] in (200, 503)
        except OSError:
            return node.proc.poll() is not None

    wait_for(up, 60, "the node's HTTPS API")
    assert node.proc.poll() is None, node.output()
    auth = auth_headers(tmp_path / "central")  # the first start's admin credential: secret too
    admin = json.loads((tmp_path / "central" / ADMIN_FILE).read_text())
    secrets += [admin["token"], admin["password"]]
    edge = start_node(_edge(tmp_path, http, cert), "--quiet", role="collect")

    answers: dict[str, tuple[int, bytes]] = {}
    line = b"Nov 22 00:15:51 web01 app: hello\n"
    ingest = "/api/v1/ingest"
    answers["wrong token"] = _call(
        base, tls, "POST", ingest, line, {"Authorization": "Bearer not-the-token"}
    )
    answers["good"] = _call(
        base, tls, "POST", ingest, line, {"Authorization": f"Bearer {INGEST_TOKEN}"}
    )
    answers["bad gzip"] = _call(
        base, tls, "POST", ingest, b"\x1f\x8b garbage",
        {"Authorization": f"Bearer {INGEST_TOKEN}", "Content-Encoding": "gzip"},
    )  # fmt: skip
    answers["bad encoding"] = _call(
        base, tls, "POST", ingest, line,
        {"Authorization": f"Bearer {INGEST_TOKEN}", "Content-Encoding": "br"},
    )  # fmt: skip
    answers["review without token"] = _call(
        base, tls, "POST", "/api/v1/patterns/p-0/review", b'{"status": "normal"}',
        {"Content-Type": "application/json"},
    )  # fmt: skip
    answers["no such topic"] = _call(base, tls, "GET", "/api/v1/topics/nope/tail", None, auth)
    statuses = {what: status for what, (status, _) in answers.items()}
    assert statuses == {
        "wrong token": 401, "good": 200, "bad gzip": 400, "bad encoding": 415,
        "review without token": 401, "no such topic": 404,
    }  # fmt: skip

    with socket.create_connection(("127.0.0.1", http), timeout=10) as plain:  # not TLS
        plain.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        plain.settimeout(10)
        with contextlib.suppress(OSError):  # a reset is an answer too: the node refused it
            plain.recv(1024)

    trap = subprocess.run(
        ["snmptrap", "-m", "", "-v", "3", "-e", SENDER_ENGINE, "-u", "logfactory",
         "-l", "authPriv", "-a", "SHA", "-A", "wrongpass123", "-x", "AES", "-X", "wrongpriv123",
         f"127.0.0.1:{snmp}", "", f"{E}.0.1", f"{E}.2.1", "s", "with the wrong keys"],
        capture_output=True, timeout=30,
    )  # fmt: skip
    assert trap.returncode == 0, trap.stderr
    wait_for(
        lambda: _source_count(_stats(base, tls, auth), "traps", "rejected") >= 1,
        30,
        "the trap refused",
    )
    wait_for(lambda: "401" in edge.output(), 60, "the edge to be refused")
    assert edge.proc.poll() is None, edge.output()
    bad_gzip = answers["bad gzip"][1]
    assert b"does not decompress" in bad_gzip or b"truncated" in bad_gzip, bad_gzip

    texts = {f"answer {what}": body.decode(errors="replace") for what, (_, body) in answers.items()}
    texts["/metrics"] = _call(base, tls, "GET", "/metrics", None, auth)[1].decode()
    texts["/api/v1/stats"] = json.dumps(_stats(base, tls, auth))
    for good, bad in _bad_configs(text).items():
        status, output = _check(tmp_path, good, bad[0])
        assert (status, bad[1] in output) == (2, True), output
        texts[f"check {good}"] = output
    status, output = _check(tmp_path, "good.yaml", text)
    assert status == 0, output
    texts["check good.yaml"] = output

    assert edge.stop() == 0
    assert node.stop() == 0
    assert "rejected a datagram" in node.output()  # the trap's failure was logged
    texts["node output"] = node.output()
    texts["edge output"] = edge.output()
    stats_files = [
        *(tmp_path / "central" / "stats").glob("*"),
        *(tmp_path / "edge" / "stats").glob("*"),
    ]
    assert len(stats_files) >= 3, stats_files  # the node's, its factory's, the edge's
    for path in stats_files:
        texts[str(path.relative_to(tmp_path))] = path.read_text(errors="replace")
    assert _leaks(texts, secrets) == {}
