"""examples/collectors.yaml: a node with every collector enabled receives from real peers on each
of them (ports moved to free ones): logger over UDP and TCP, syslog over TLS, raw TCP lines,
net-snmp's snmptrap v2c and v3 authPriv, gzip'd HTTP ingest and a tailed file."""

from __future__ import annotations

import gzip
import json
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.nodes import auth_headers
from tests.helpers.ports import free_port, free_port_both

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "collectors.yaml"
V3 = ["-v3", "-e", "0x8000000001020304", "-u", "logfactory", "-l", "authPriv", "-a", "SHA",
      "-A", "authpass123", "-x", "AES", "-X", "privpass123"]  # fmt: skip


def _stats(http: int, auth: dict[str, str]) -> dict[str, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{http}/api/v1/stats", headers=auth)
    with urllib.request.urlopen(request, timeout=10) as r:
        data: dict[str, Any] = json.load(r)
    return data


def test_every_source_of_the_example_receives_from_its_peer(tmp_path: Path) -> None:
    syslog, tls, raw, http = free_port_both(), free_port(), free_port(), free_port()
    snmp = free_port(socket.SOCK_DGRAM)
    text = (
        EXAMPLE.read_text()
        .replace("127.0.0.1:5514", f"127.0.0.1:{syslog}")
        .replace("127.0.0.1:6514", f"127.0.0.1:{tls}")
        .replace("127.0.0.1:5170", f"127.0.0.1:{raw}")
        .replace("127.0.0.1:1162", f"127.0.0.1:{snmp}")
        .replace("127.0.0.1:8080", f"127.0.0.1:{http}")
    )
    config = tmp_path / "collectors.yaml"
    config.write_text(text)
    (tmp_path / "var" / "collect").mkdir(parents=True)
    with (tmp_path / "node.log").open("wb") as log:
        node = subprocess.Popen(
            [sys.executable, "-m", "logfactory", "run", "-c", str(config), "--quiet"],
            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        auth = auth_headers(tmp_path / "var" / "collectors")  # the node's first-start token
        deadline = time.monotonic() + 60
        while True:
            try:
                _stats(http, auth)
                break
            except OSError:
                assert node.poll() is None, (tmp_path / "node.log").read_text()
                assert time.monotonic() < deadline, "the node never answered"
                time.sleep(0.2)
        subprocess.run(["logger", "-n", "127.0.0.1", "-P", str(syslog), "-d", "over udp"],
                       check=True)  # fmt: skip
        subprocess.run(["logger", "-n", "127.0.0.1", "-P", str(syslog), "-T", "over tcp"],
                       check=True)  # fmt: skip
        context = ssl.create_default_context(
            cafile=str(tmp_path / "var" / "collectors" / "tls" / "node.crt")
        )
        with (
            socket.create_connection(("127.0.0.1", tls)) as plain,
            context.wrap_socket(plain, server_hostname="localhost") as s,
        ):
            frame = b"<13>Nov 22 03:00:00 tlshost app: over tls"
            s.sendall(b"%d %s" % (len(frame), frame))
        with socket.create_connection(("127.0.0.1", raw)) as s:
            s.sendall(b"a raw line\n")
        target = f"127.0.0.1:{snmp}"
        trap = ["", "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.2.1.2.2.1.1.2", "i", "2"]
        subprocess.run(["snmptrap", "-v2c", "-c", "public", "-m", "", target, *trap], check=True)
        subprocess.run(["snmptrap", *V3, "-m", "", target, *trap], check=True)
        body = gzip.compress(b'{"message": "ingested", "host": "h1"}\n')
        request = urllib.request.Request(
            f"http://127.0.0.1:{http}/api/v1/ingest", data=body, method="POST",
            headers={"Content-Encoding": "gzip", "Content-Type": "application/x-ndjson", **auth},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as r:
            assert r.status == 200
        with (tmp_path / "var" / "collect" / "app.log").open("a") as f:
            f.write("a file line\n")
        want = {"syslog": 3, "raw-lines": 1, "traps": 2, "ingest": 1, "files": 1}
        deadline = time.monotonic() + 30
        while True:
            got = {k: v.get("received", 0) for k, v in _stats(http, auth)["sources"].items()}
            if all(got.get(k, 0) >= n for k, n in want.items()):
                break
            assert time.monotonic() < deadline, f"received {got}, want {want}"
            time.sleep(0.2)
        assert {k: got[k] for k in want} == want  # once each: nothing doubled
    finally:
        node.terminate()
        try:
            node.wait(timeout=60)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait()
            raise
    assert node.returncode == 0, (tmp_path / "node.log").read_text()[-3000:]
