"""Bad input against a running node: nothing crashes, nothing is lost silently.

Invalid UTF-8, binary garbage, a 10 MB line, a truncated octet-counted frame, an oversized
frame and an unknown source tag each end as a dead letter (with the reason and the original
bytes) or as a counted rejection, and the node stays healthy throughout. The letters of the
unknown tag and of the random bytes are checked field by field against the record at their
position on ``logs.raw`` (tests/unit/test_deadletters.py covers every path on one worker).
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
from tests.helpers.bus import read_all
from tests.helpers.nodes import auth_headers, demo_config

from logfactory.bus.local import LocalBus
from logfactory.config import load_config
from logfactory.event import format_time
from logfactory.record import Record, decode_record, now_ns
from logfactory.topics import DEADLETTER, PARSED, RAW

pytestmark = pytest.mark.e2e


def _http(
    url: str,
    data: bytes | None = None,
    ctype: str = "text/plain",
    auth: dict[str, str] | None = None,
) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=data, headers={"Content-Type": ctype, **(auth or {})})
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
    return [json.loads(m.value) for m in read_all(bus, topic)]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _originals(messages: list[dict[str, Any]]) -> set[bytes]:
    return {base64.b64decode(m["original_b64"]) for m in messages if m.get("original_b64")}


def _raw_at(bus: LocalBus, position: str) -> Record:
    """The record on ``logs.raw`` at ``position`` (``logs.raw/<partition>/<offset>``)."""
    topic, partition, offset = position.rsplit("/", 2)
    assert topic == RAW
    ends = {(RAW, p): hi for p, (_lo, hi) in bus.watermarks(RAW).items()}
    consumer = bus.consumer(None, [RAW], "earliest")
    try:
        while any(consumer.position().get(tp, 0) < hi for tp, hi in ends.items()):
            for m in consumer.poll(5000, timeout=1.0):
                if (m.partition, m.offset) == (int(partition), int(offset)):
                    return decode_record(m.value)
    finally:
        consumer.close()
    raise AssertionError(f"nothing on logs.raw at {position}")


def _check_letter(
    bus: LocalBus, letter: dict[str, Any], expected: dict[str, Any], since: str
) -> None:
    """``letter`` is ``expected`` plus a receive time of this test and the position of a record
    on logs.raw that says the same (its source, host, receive time, line and bytes)."""
    assert {k: v for k, v in letter.items() if k not in ("received", "position")} == expected
    assert since <= letter["received"] <= format_time(now_ns()), letter
    record = _raw_at(bus, letter["position"])
    assert (record.source, record.host, format_time(record.received), record.line) == (
        letter["source"], letter["host"], letter["received"], letter["line"],
    )  # fmt: skip
    original = expected.get("original_b64")
    assert record.raw == (base64.b64decode(original) if original is not None else None)


def test_bad_input_never_crashes_and_is_accounted_for(tmp_path: Path, start_node: Any) -> None:
    config_path, syslog_port, http_port = demo_config(tmp_path)
    config = load_config(config_path)
    since = format_time(now_ns())
    node = start_node(config_path)
    base = f"http://127.0.0.1:{http_port}"
    _healthy(base)
    auth = auth_headers(Path(config.node.data_dir))

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
    # no credential: refused before the body is read, nothing of it lands
    status, body = _http(f"{base}/api/v1/ingest?source=syslog&host=anonhost", b"anonymous line")
    assert status == 401
    assert "Authorization: Bearer" in body["error"]
    status, body = _http(f"{base}/api/v1/ingest?source=syslog&host=hugehost", huge, auth=auth)
    # over max_frame_bytes (1 MiB) as on TCP: rejected by its number, the request still a 200
    assert status == 200
    assert (body["accepted"], body["rejected"]) == (0, 1)
    assert "exceeds max_frame_bytes" in body["errors"][0]["error"]
    status, body = _http(
        f"{base}/api/v1/ingest?source=nosuchtag&host=x", b"who decodes me?", auth=auth
    )
    assert status == 200
    assert body["accepted"] == 1
    status, body = _http(
        f"{base}/api/v1/ingest", b'{"line": "ok"}\n{oops\n', "application/x-ndjson", auth
    )
    assert status == 200
    assert body["accepted"] == 1
    assert body["rejected"] == 1

    bus = LocalBus(Path(config.node.data_dir) / "bus")
    try:
        deadline = time.monotonic() + 60
        letters: list[dict[str, Any]] = []
        parsed: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            letters = _read(bus, DEADLETTER)
            parsed = _read(bus, PARSED)
            originals = _originals(letters) | _originals(parsed)
            if (
                any("unknown source tag" in str(x["reason"]) for x in letters)
                and {"badhost", "trunchost", "bighost"} <= {p["host"] for p in parsed}
                and bytes(range(256)) in originals
            ):
                break
            time.sleep(0.5)
        # invalid UTF-8 does not blind the factory: decoded with U+FFFD, flagged, bytes kept
        bad = [p for p in parsed if p["host"] == "badhost"]
        assert bad, parsed
        assert bad[0]["fields"]["invalid_utf8"] is True, parsed
        assert base64.b64decode(bad[0]["original_b64"]) == bad_utf8
        assert "caf\ufffd" in bad[0]["message"]
        # an unknown tag: a letter of the sort stage with every field of the record
        [tag_letter] = [x for x in letters if x.get("source") == "nosuchtag"]
        _check_letter(bus, tag_letter, {
            "reason": "unknown source tag 'nosuchtag'; add a route under factory.routes",
            "stage": "sort", "source": "nosuchtag", "host": "x", "line": "who decodes me?",
        }, since)  # fmt: skip
        # the random bytes are no syslog line: a letter of the decode stage, the bytes kept
        binary = bytes(range(256))
        [bin_letter] = [x for x in letters if x.get("original_b64") == _b64(binary)]
        text = binary.decode("utf-8", errors="replace")
        _check_letter(bus, bin_letter, {
            "reason": f"not a syslog line: {text.partition(chr(10))[0]!r}",  # its first line
            "stage": "decode",
            "source": "syslog", "host": "127.0.0.1", "line": text, "original_b64": _b64(binary),
        }, since)  # fmt: skip
        assert not any(p.get("original_b64") == _b64(binary) for p in parsed)  # not also parsed
        assert {"trunchost", "bighost"} <= {p["host"] for p in parsed}
        assert not any(decode_record(m.value).host == "anonhost" for m in read_all(bus, RAW))
    finally:
        bus.close()

    health = _healthy(base)
    assert health["status"] == "ok"
    _, stats = _http(f"{base}/api/v1/stats", auth=auth)
    assert stats["sources"]["syslog"]["rejected"] >= 1  # the 2 MB frame (limit 1 MiB)
    assert stats["sources"]["ingest"]["rejected"] >= 2  # the 10 MB line, the malformed NDJSON
    assert "restarting" not in node.output()
    assert node.stop() == 0
