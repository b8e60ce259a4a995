"""Bad input against a running node: nothing crashes, nothing is lost silently.

Invalid UTF-8, binary garbage, a 10 MB line, a truncated octet-counted frame, an oversized
frame and an unknown source tag each end as a dead letter (with the reason and the original
bytes) or as a counted rejection, and the node stays healthy throughout.
"""

from __future__ import annotations

import base64
import json
import socket
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from logfactory.bus.local import LocalBus
from logfactory.config import load_config
from logfactory.topics import DEADLETTER, PARSED

from .conftest import demo_config

pytestmark = pytest.mark.e2e


def _http(url: str, data: bytes | None = None, ctype: str = "text/plain") -> tuple[int, Any]:
    req = urllib.request.Request(url, data=data, headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _healthy(base: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            status, last = _http(f"{base}/api/v1/health")
            if status == 200:
                return dict(last)
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"node not healthy: {last}")


def _read(bus: LocalBus, topic: str) -> list[dict[str, Any]]:
    """Everything on ``topic`` up to its end as of now (the demo feed keeps writing)."""
    ends = {(topic, p): hi for p, (_lo, hi) in bus.watermarks(topic).items()}
    consumer = bus.consumer(None, [topic], "earliest")
    out: list[dict[str, Any]] = []
    while any(consumer.position().get(tp, 0) < hi for tp, hi in ends.items()):
        batch = consumer.poll(5000, timeout=1.0)
        out += [json.loads(m.value) for m in batch if m.offset < ends[(topic, m.partition)]]
    consumer.close()
    return out


def test_bad_input_never_crashes_and_is_accounted_for(tmp_path: Path, start_node: Any) -> None:
    config_path, syslog_port, http_port = demo_config(tmp_path)
    config = load_config(config_path)
    node = start_node(config_path)
    base = f"http://127.0.0.1:{http_port}"
    _healthy(base)

    bad_utf8 = b"<13>Nov 22 00:10:42 badhost app: caf\xe9 \xff\xfe broken"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(bad_utf8, ("127.0.0.1", syslog_port))
        udp.sendto(bytes(range(256)), ("127.0.0.1", syslog_port))
    with socket.create_connection(("127.0.0.1", syslog_port)) as tcp:
        tcp.sendall(b"300 <13>Nov 22 00:10:42 trunchost app: cut short")  # promised 300 bytes
    with socket.create_connection(("127.0.0.1", syslog_port)) as tcp:
        tcp.sendall(b"<13>Nov 22 00:10:42 bighost app: " + b"x" * 2_000_000 + b"\n")
        tcp.sendall(b"<13>Nov 22 00:10:42 bighost app: after the big one\n")

    huge = b"<13>Nov 22 00:10:42 hugehost app: " + b"y" * 10_000_000
    status, body = _http(f"{base}/api/v1/ingest?source=syslog&host=hugehost", huge)
    assert status == 200 and body["accepted"] == 1
    status, body = _http(f"{base}/api/v1/ingest?source=nosuchtag&host=x", b"who decodes me?")
    assert status == 200 and body["accepted"] == 1
    status, body = _http(
        f"{base}/api/v1/ingest", b'{"line": "ok"}\n{oops\n', "application/x-ndjson"
    )
    assert status == 200 and body["accepted"] == 1 and body["rejected"] == 1

    bus = LocalBus(Path(config.node.data_dir) / "bus")
    try:
        deadline = time.monotonic() + 60
        letters: list[dict[str, Any]] = []
        parsed_hosts: set[str] = set()
        while time.monotonic() < deadline:
            letters = _read(bus, DEADLETTER)
            reasons = " | ".join(str(x["reason"]) for x in letters)
            parsed_hosts = {p["host"] for p in _read(bus, PARSED)}
            if (
                "invalid UTF-8" in reasons
                and "unknown source tag" in reasons
                and {"hugehost", "trunchost", "bighost"} <= parsed_hosts
            ):
                break
            time.sleep(0.5)
        bad = [x for x in letters if "invalid UTF-8" in x["reason"]]
        assert any(base64.b64decode(x["original_b64"]) == bad_utf8 for x in bad), letters
        assert any(base64.b64decode(x["original_b64"]) == bytes(range(256)) for x in bad)
        assert any("unknown source tag 'nosuchtag'" in x["reason"] for x in letters)
        assert {"hugehost", "trunchost", "bighost"} <= parsed_hosts
    finally:
        bus.close()

    health = _healthy(base)
    assert health["status"] == "ok"
    _, stats = _http(f"{base}/api/v1/stats")
    assert stats["sources"]["syslog"]["rejected"] >= 1  # the 2 MB frame (limit 1 MiB)
    assert stats["sources"]["ingest"]["rejected"] >= 1  # the malformed NDJSON line
    assert "restarting" not in node.output()
    assert node.stop() == 0
