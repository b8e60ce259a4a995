"""Composite windows follow their partition: state written by two workers of one group is kept
apart (one key per partition) and a third worker that takes both partitions resumes both."""

from __future__ import annotations

import time
import zlib
from pathlib import Path

from tests.helpers.bus import read_all

from logfactory.bus.base import Producer
from logfactory.bus.local import LocalBus
from logfactory.config import parse_config
from logfactory.event import decode_event
from logfactory.factory.worker import FactoryWorker
from logfactory.record import encode_record, make_record
from logfactory.stats import StatsRegistry
from logfactory.topics import RAW, STATE, ensure_topics

CONFIG = r"""
node: {{name: t, data_dir: {data}}}
bus: {{partitions: 2}}
workshops:
  syslog: {{format: syslog}}
factory: {{group: g, new_patterns: false}}
rules:
  - name: password-attack
    when:
      workshop: syslog
      program: sshd
      message: 'Failed password for (?P<account>\S+) from (?P<addr>\S+)'
    key: account
    threshold: 3
    window: 10m
    subtype: PASSWORD_ATTACK
    reason: "{{count}} failed passwords for {{account}}"
"""


def _host_on(partition: int) -> str:
    return next(h for i in range(100) if zlib.crc32((h := f"node{i}").encode()) % 2 == partition)


def _fail(producer: Producer, host: str, account: str, n: int) -> None:
    line = f"<38>Nov 22 00:10:{40 + n} {host} sshd: Failed password for {account} from 10.0.0.{n}"
    producer.produce(RAW, encode_record(make_record("syslog", host, line)), host.encode())


def _drain(worker: FactoryWorker) -> None:
    while batch := worker.consumer.poll(500, timeout=0.05):
        worker.process_batch(batch)


def _read(bus: LocalBus, topic: str) -> list[tuple[bytes | None, bytes]]:
    return [(m.key, m.value) for m in read_all(bus, topic)]


def test_windows_survive_a_partition_moving_to_another_worker(tmp_path: Path) -> None:
    config = parse_config(CONFIG.format(data=tmp_path / "d"))
    bus = LocalBus(tmp_path / "d" / "bus", session_timeout_ms=300)
    ensure_topics(bus, config)  # logs.raw with the configured 2 partitions, before producing
    producer = bus.producer()
    hosts = {_host_on(0): "alice", _host_on(1): "bob"}
    for host, account in hosts.items():
        for n in (1, 2):
            _fail(producer, host, account, n)
    producer.flush()

    a = FactoryWorker(config, bus, StatsRegistry("a"))
    b = FactoryWorker(config, bus, StatsRegistry("b"))
    deadline = time.monotonic() + 10
    while not (len(a.consumer.assignment()) == len(b.consumer.assignment()) == 1):
        assert time.monotonic() < deadline, "the two workers never split the partitions"
        time.sleep(0.02)
    _drain(a)
    _drain(b)
    keys = {key for key, _ in _read(bus, STATE)}
    assert keys == {b"g/logs.raw/0", b"g/logs.raw/1"}  # neither worker overwrote the other
    assert _read(bus, "events.ALERT") == []  # two of three: nothing fired yet
    a.close()
    b.close()

    c = FactoryWorker(config, bus, StatsRegistry("c"))
    for host, account in hosts.items():
        _fail(producer, host, account, 3)
    producer.flush()
    deadline = time.monotonic() + 10
    while len(c.consumer.assignment()) < 2:
        assert time.monotonic() < deadline, "the third worker never took both partitions"
        time.sleep(0.02)
    _drain(c)
    c.close()
    events = [decode_event(v) for _, v in _read(bus, "events.ALERT")]
    assert sorted((e.body["account"], e.body["count"]) for e in events) == [
        ("alice", 3),
        ("bob", 3),
    ]
    producer.close()
    bus.close()
