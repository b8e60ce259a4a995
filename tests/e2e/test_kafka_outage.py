"""Issue 3, failure test 3: every broker stops for 30 s while a collector receives syslog; every
line it accepted during the outage reaches ``logs.raw`` once the brokers return, once each and
in order per host. Meanwhile the collector's health endpoint says what is wrong."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.nodes import stop_process
from tests.helpers.ports import free_port

from logfactory.bus import open_bus
from logfactory.bus.kafka import KafkaBus
from logfactory.config import load_config
from logfactory.record import decode_record
from logfactory.topics import RAW

pytestmark = pytest.mark.e2e

HOSTS = 6
OUTAGE_S = 30.0
CONFIG = """
node: {{name: outage, data_dir: {data}}}
bus:
  type: kafka
  partitions: 3
  kafka:
    bootstrap.servers: "{bootstrap}"
    replication.factor: 3
    min.insync.replicas: 2
http: {{listen: 127.0.0.1:{http}}}
sources:
  - {{type: syslog, name: syslog, tag: syslog, listen: 127.0.0.1:{syslog}, protocols: [tcp]}}
  - {{type: http, name: ingest, tag: syslog}}
workshops:
  syslog: {{format: syslog}}
"""


def _line(seq: int) -> bytes:
    host = f"cn{seq % HOSTS:02d}"
    return f"<13>Nov 22 00:10:42 {host} app: line {seq}\n".encode()


def _health(http: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http}/api/v1/health", timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def _read_raw(bus: KafkaBus) -> list[bytes]:
    consumer = bus.consumer(None, [RAW], "earliest")
    ends = {(RAW, p): hi for p, (_lo, hi) in bus.watermarks(RAW).items()}
    out: list[bytes] = []
    try:
        for _ in range(600):
            if all(consumer.position().get(tp, 0) >= hi for tp, hi in ends.items()):
                break
            out += [m.value for m in consumer.poll(5000, timeout=0.2)]
    finally:
        consumer.close()
    return out


def test_lines_accepted_while_every_broker_is_down_arrive_afterwards(
    tmp_path: Path, make_kafka: Any
) -> None:
    cluster = make_kafka(3)
    syslog, http = free_port(), free_port()
    path = tmp_path / "outage.yaml"
    path.write_text(
        CONFIG.format(data=tmp_path / "d", bootstrap=cluster.bootstrap, syslog=syslog, http=http)
    )
    config = load_config(path)
    with (tmp_path / "collect.log").open("wb") as log:
        collector = subprocess.Popen(
            [sys.executable, "-m", "logfactory", "collect", "-c", str(path), "--quiet"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    sent = 0
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = socket.create_connection(("127.0.0.1", syslog), timeout=1)
                break
            except OSError:
                assert collector.poll() is None, (tmp_path / "collect.log").read_text()
                assert time.monotonic() < deadline, "the collector never listened"
                time.sleep(0.1)
        with conn:
            for _ in range(1000):  # before the outage
                conn.sendall(_line(sent))
                sent += 1
            cluster.stop_all()
            stopped = time.monotonic()
            while time.monotonic() - stopped < OUTAGE_S:  # 100 lines/s while every broker is down
                conn.sendall(b"".join(_line(sent + i) for i in range(10)))
                sent += 10
                time.sleep(0.1)  # pacing the sender, not waiting for an event
            status, body = _health(http)
            assert status == 503, body
            assert any("spool" in p for p in body.get("problems", [])), body
            cluster.start_all()
            for _ in range(1000):  # after
                conn.sendall(_line(sent))
                sent += 1
        bus = open_bus(config)
        assert isinstance(bus, KafkaBus)
        deadline = time.monotonic() + 120
        while len(got := _read_raw(bus)) < sent and time.monotonic() < deadline:
            time.sleep(0.5)
        bus.close()
    finally:
        stop_process(collector)
    seqs: dict[str, list[int]] = defaultdict(list)
    for raw in got:
        record = decode_record(raw)
        seqs[record.host].append(int(record.line.rsplit("line ", 1)[1]))
    received = sorted(s for values in seqs.values() for s in values)
    lost, repeated = sent - len(set(received)), len(received) - len(set(received))
    assert received == list(range(sent)), f"{lost} lost, {repeated} repeated"
    for host, values in seqs.items():
        assert values == sorted(values), f"{host} out of order"
    assert collector.returncode == 0, (tmp_path / "collect.log").read_text()[-3000:]
