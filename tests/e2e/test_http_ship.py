"""An edge collector shipping to a central node over HTTP (``bus.type: http``), both real
``logfactory collect`` processes, fed by util-linux ``logger``: records arrive as the edge made
them, and a central node that goes away and returns loses and duplicates nothing (issue 5).
The edge ships with an ingest token the central node's admin made through its API (what the
docs recommend); the http source's own token in the central config works too, for that source.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.helpers.nodes import NodeProcess, auth_headers, new_token
from tests.helpers.ports import free_port, free_port_both
from tests.helpers.waiting import wait_for
from tests.kafka_broker import port_open

from logfactory.bus.base import BusError
from logfactory.bus.http_ship import HttpShipProducer, ShipTarget
from logfactory.bus.local import LocalBus
from logfactory.collect.tls import ensure_self_signed
from logfactory.record import Record, decode_record, encode_record, make_record

pytestmark = pytest.mark.e2e

TOKEN = "edge-token-0123"
Start = Callable[[Path], NodeProcess]


@pytest.fixture
def start_collect(start_node: Callable[..., NodeProcess]) -> Start:
    return lambda config: start_node(config, "--quiet", role="collect")


def _central(tmp_path: Path) -> tuple[Path, int]:
    port = free_port()
    cfg = tmp_path / "central.yaml"
    cfg.write_text(
        f"node: {{name: central, data_dir: {tmp_path / 'central'}}}\n"
        f"http: {{listen: '127.0.0.1:{port}'}}\n"
        f"sources:\n  - {{type: http, name: edges, tag: http, token: {TOKEN}}}\n"
    )
    return cfg, port


def _edge(tmp_path: Path, central_port: int, token: str = TOKEN) -> tuple[Path, int]:
    port = free_port_both()
    cfg = tmp_path / "edge.yaml"
    cfg.write_text(
        f"node: {{name: edge1, data_dir: {tmp_path / 'edge'}}}\n"
        f"bus: {{type: http, http: {{url: 'http://127.0.0.1:{central_port}/api/v1/ingest', "
        f"token: {token}}}}}\n"
        "collector: {spool_flush_timeout: 1s}\n"
        f"sources:\n  - {{type: syslog, name: syslog, tag: syslog, "
        f"listen: '127.0.0.1:{port}', protocols: [tcp]}}\n"
    )
    return cfg, port


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def _logger(port: int, first: int, last: int) -> None:
    for n in range(first, last):
        subprocess.run(
            ["logger", "-n", "127.0.0.1", "-P", str(port), "-T", "--rfc5424",
             "-t", "shipper", f"shipped line {n}"],
            check=True,
        )  # fmt: skip


def _on_central(tmp_path: Path) -> list[tuple[bytes | None, Record]]:
    bus = LocalBus(tmp_path / "central" / "bus")
    try:
        consumer = bus.consumer(None, ["logs.raw"], "earliest")
        out: list[tuple[bytes | None, Record]] = []
        while batch := consumer.poll(1000, 0.2):
            out += [(m.key, decode_record(m.value)) for m in batch]
        consumer.close()
        return out
    finally:
        bus.close()


def _numbers(records: list[tuple[bytes | None, Record]]) -> list[int]:
    texts = [r.line.decode() if isinstance(r.line, bytes) else r.line for _k, r in records]
    return [int(t.rsplit(" ", 1)[1]) for t in texts if "shipped line" in t]


def test_an_edge_ships_its_records_through_a_central_outage(
    tmp_path: Path, start_collect: Start
) -> None:
    central_cfg, central_port = _central(tmp_path)
    central = start_collect(central_cfg)
    wait_for(lambda: _healthy(central_port), timeout=30, what="the central node")
    base = f"http://127.0.0.1:{central_port}"
    token = new_token(base, tmp_path / "central", "ingest", name="edge1")
    edge_cfg, edge_port = _edge(tmp_path, central_port, token)
    edge = start_collect(edge_cfg)
    wait_for(lambda: port_open(edge_port), timeout=30, what="the edge's syslog port")

    _logger(edge_port, 0, 20)
    wait_for(lambda: len(_numbers(_on_central(tmp_path))) >= 20, timeout=30, what="20 lines")
    first = _on_central(tmp_path)
    key, record = first[0]
    assert record.source == "syslog"  # the edge's tag, not the central http source's
    assert record.meta.get("transport") == "tcp"
    assert key == record.host.encode()

    assert central.stop() == 0
    _logger(edge_port, 20, 50)  # accepted by the edge while the central node is away
    wait_for(lambda: "spooling to" in edge.output(), timeout=30, what="the edge to spool")
    assert len(_numbers(_on_central(tmp_path))) == 20

    start_collect(central_cfg)
    wait_for(lambda: _healthy(central_port), timeout=30, what="the central node again")
    wait_for(lambda: len(_numbers(_on_central(tmp_path))) >= 50, timeout=60, what="50 lines")
    assert _numbers(_on_central(tmp_path)) == list(range(50))  # no loss, no duplicate, in order


def test_a_wrong_token_is_named_and_nothing_is_dropped(
    tmp_path: Path, start_collect: Start
) -> None:
    central_cfg, central_port = _central(tmp_path)
    start_collect(central_cfg)
    wait_for(lambda: _healthy(central_port), timeout=30, what="the central node")
    url = f"http://127.0.0.1:{central_port}/api/v1/ingest"
    wrong = HttpShipProducer(ShipTarget(url, token="not-the-token"))
    record = make_record("syslog", "h1", "kept for later", {})
    try:
        wrong.produce("logs.raw", encode_record(record), b"h1")
        # nothing is ever accepted, so a flush waits its whole timeout: first the answer
        wait_for(lambda: "401" in (wrong._error or ""), timeout=30, what="the central's answer")
        with pytest.raises(BusError, match="answered 401"):
            wrong.flush(0.1)
        assert wrong.pending() == 1  # still held, to be sent when the token is fixed
    finally:
        wrong.close()
    right = HttpShipProducer(ShipTarget(url, token=TOKEN))
    try:
        right.produce("logs.raw", encode_record(record), b"h1")
        right.flush(10.0)
        assert right.pending() == 0
        with pytest.raises(BusError, match=r"carries logs\.raw only"):
            right.produce("events.ALERT", b"x")
    finally:
        right.close()
    assert [r.line for _k, r in _on_central(tmp_path)] == ["kept for later"]


def test_roles_that_need_a_bus_refuse_an_http_bus(tmp_path: Path) -> None:
    edge_cfg, _port = _edge(tmp_path, 9)
    for role in ("run", "factory", "serve"):
        done = subprocess.run(
            [sys.executable, "-m", "logfactory", role, "-c", str(edge_cfg)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode != 0
        assert "bus type http only ships collected records" in done.stderr, done.stderr
        assert f"`logfactory {role}` needs a bus of its own" in done.stderr


def test_an_edge_ships_over_https_trusting_the_central_nodes_certificate(
    tmp_path: Path, start_collect: Start
) -> None:
    cert, key = ensure_self_signed(tmp_path / "tls", "central")  # SANs: localhost, 127.0.0.1
    cfg, port = _central(tmp_path)
    cfg.write_text(
        cfg.read_text().replace(
            f"http: {{listen: '127.0.0.1:{port}'}}",
            f"http: {{listen: '127.0.0.1:{port}', tls_cert: '{cert}', tls_key: '{key}'}}",
        )
    )
    start_collect(cfg)
    url = f"https://127.0.0.1:{port}/api/v1/ingest"
    record = make_record("syslog", "h1", "over tls", {})

    untrusting = HttpShipProducer(ShipTarget(url, token=TOKEN))  # the system CAs only
    try:
        wait_for(lambda: port_open(port), timeout=30, what="the central node's https port")
        untrusting.produce("logs.raw", encode_record(record), b"h1")
        wait_for(
            lambda: "CERTIFICATE_VERIFY_FAILED" in (untrusting._error or ""),
            timeout=30,
            what="the TLS handshake to fail",
        )
        with pytest.raises(BusError, match="CERTIFICATE_VERIFY_FAILED"):
            untrusting.flush(0.1)
    finally:
        untrusting.close()
    trusting = HttpShipProducer(ShipTarget(url, token=TOKEN, ca_file=str(cert)))
    try:
        trusting.produce("logs.raw", encode_record(record), b"h1")
        trusting.flush(15.0)
    finally:
        trusting.close()
    assert [r.line for _k, r in _on_central(tmp_path)] == ["over tls"]


def test_batches_shrink_to_what_the_central_node_takes(
    tmp_path: Path, start_collect: Start
) -> None:
    cfg, port = _central(tmp_path)
    cfg.write_text(
        cfg.read_text().replace(f"token: {TOKEN}}}", f"token: {TOKEN}, max_body_bytes: 64KiB}}")
    )
    start_collect(cfg)
    wait_for(lambda: _healthy(port), timeout=30, what="the central node")
    producer = HttpShipProducer(ShipTarget(f"http://127.0.0.1:{port}/api/v1/ingest", TOKEN))
    lines = [f"line {n:05d} " + "x" * 80 for n in range(3000)]  # ~300 KB in one batch: 413
    try:
        # in one call, so the first batch is all of them: one at a time, a quick sender could
        # post small batches that never reach the limit
        values = [encode_record(make_record("app", "h1", line)) for line in lines]
        producer.produce_many("logs.raw", values, [b"h1"] * len(values))
        producer.flush(30.0)
    finally:
        producer.close()
    assert [r.line for _k, r in _on_central(tmp_path)] == lines  # all, once, in order
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/stats", headers=auth_headers(tmp_path / "central")
    )
    with urllib.request.urlopen(request, timeout=5) as r:
        stats = json.load(r)
    assert stats["sources"]["edges"]["refused"] >= 1  # the first, too large, batch: a 413
