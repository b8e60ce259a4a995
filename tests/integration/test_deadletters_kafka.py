"""Dead letters through a factory worker on a real Kafka broker: each one whole, each once.

Why: the embedded bus is not the only bus a letter is written to. On Kafka a letter goes out in
the worker's transaction with the input offsets, and its position names a Kafka partition and
offset; no test looked at a letter there. The main paths (intake garbage, an unknown tag, the
decode errors of the kv and json workshops, bytes that are not UTF-8, an event type that is not
configured) each make exactly the letter written out here by hand, and no letter's record is
also in ``logs.parsed`` or an event (but the unconfigured type's record, which was decoded).

The broker is the session's shared one: other tests write to ``logs.raw`` too, so this test's
messages carry a key of their own (one partition, in order), the worker a group of its own, and
only outputs at this test's input positions are looked at.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from tests.kafka_fixtures import SHARED_PARTITIONS

from logfactory.bus import open_bus
from logfactory.bus.kafka import KafkaBus
from logfactory.config import Config, parse_config
from logfactory.event import BUILTIN_TYPES, position_event_id, topic_for_type
from logfactory.factory.worker import FactoryWorker
from logfactory.record import Record, encode_record
from logfactory.stats import StatsRegistry
from logfactory.topics import DEADLETTER, PARSED, RAW

pytestmark = pytest.mark.integration

CONFIG = """
node: {{name: dlk, data_dir: {data}, timezone: UTC}}
bus:
  type: kafka
  partitions: {partitions}  # the shared broker's count: see kafka_fixtures.SHARED_PARTITIONS
  kafka: {{bootstrap.servers: "{bootstrap}", session.timeout.ms: 6000}}
workshops:
  syslog: {{format: syslog}}
  sce:
    format: kv
    separator: "|"
    fields: [time, host, user, addr, op, params]
    time_field: time
  apps: {{format: json}}
factory: {{group: {group}, batch_size: 200, new_patterns: false}}
event_types:
  - {{name: SSH_LOGIN}}
mappings:
  - name: installs
    when: {{workshop: apps, fields: {{action: install}}}}
    type: APP_STATUS
    body: {{app: "{{app}}"}}
  - name: ssh-login
    when: {{workshop: syslog, program: sshd, message: 'Accepted \\S+ for (?P<user>\\S+)'}}
    type: SSH_LOGIN
    body: {{user: "{{user}}"}}
"""

RECEIVED_TEXT = "2026-12-06T05:04:03.123456Z"
RECEIVED = (
    datetime(2026, 12, 6, 5, 4, 3, 123456, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)
) // timedelta(microseconds=1) * 1000 + 789
LOGIN = "<38>Dec  7 09:00:05 web02 sshd[4242]: Accepted publickey for alice from 10.0.0.7 port 22"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _record(source: str, host: str, data: bytes) -> bytes:
    try:
        line, raw = data.decode("utf-8"), None
    except UnicodeDecodeError:
        line, raw = data.decode("utf-8", errors="replace"), data
    return encode_record(Record(source, host, RECEIVED, line, {}, raw))


def _cases(n: str) -> list[tuple[bytes, dict[str, Any]]]:
    """(input value, the letter it makes without its position); ``n`` makes them this run's."""

    def of(source: str, host: str, line: str, **more: str) -> dict[str, Any]:
        return {"received": RECEIVED_TEXT, "source": source, "host": host, "line": line, **more}

    garbage = f"\x00garbage {n} \xff".encode("latin-1")
    not_record = f'{{"line": "{n}"}}'.encode()
    return [
        (garbage, {"reason": "not a logfactory record: JSON is malformed: invalid character "
                             "(byte 0)",
                   "stage": "intake", "original_b64": _b64(garbage)}),
        (b"", {"reason": "not a logfactory record: Input data was truncated", "stage": "intake",
               "original_b64": ""}),
        (not_record, {"reason": "not a logfactory record: Object missing required field "
                                "`source`",
                      "stage": "intake", "original_b64": _b64(not_record)}),
        (_record(f"tag{n}", f"h-{n}", b"who decodes me?"),
         {"reason": f"unknown source tag 'tag{n}'; add a route under factory.routes",
          "stage": "sort", **of(f"tag{n}", f"h-{n}", "who decodes me?")}),
        (_record("sce", f"h-{n}", b"2026-11-22 00:10:42|login01|usr1"),
         {"reason": "expected 6 columns separated by '|', found 3", "stage": "decode",
          **of("sce", f"h-{n}", "2026-11-22 00:10:42|login01|usr1")}),
        (_record("apps", f"h-{n}", b'{"message": "caf\xe9'),
         {"reason": "not valid JSON: Input data was truncated", "stage": "decode",
          **of("apps", f"h-{n}", '{"message": "caf\ufffd',
               original_b64=_b64(b'{"message": "caf\xe9'))}),
        (_record("syslog", f"h-{n}", LOGIN.encode()),
         {"reason": "event type 'SSH_LOGIN' is not configured; add it under event_types",
          "stage": "package", **of("syslog", f"h-{n}", LOGIN)}),
    ]  # fmt: skip


def _read_all(bus: KafkaBus, topics: list[str]) -> list[tuple[str, bytes]]:
    """(topic, value) of every committed message of ``topics`` up to their ends as of now."""
    ends = {(topic, p): hi for topic in topics for p, (_lo, hi) in bus.watermarks(topic).items()}
    consumer = bus.consumer(None, topics, "earliest")
    out: list[tuple[str, bytes]] = []
    try:
        deadline = time.monotonic() + 120
        while any(consumer.position().get(tp, 0) < hi for tp, hi in ends.items()):
            assert time.monotonic() < deadline, f"could not read {topics} to their ends"
            out += [(m.topic, m.value) for m in consumer.poll(5000, timeout=0.5)]
    finally:
        consumer.close()
    return out


@pytest.mark.timeout(300)
def test_letters_on_kafka_are_whole_and_written_once(tmp_path: Path, kafka_bootstrap: str) -> None:
    n = uuid.uuid4().hex[:10]
    group = f"dl-{n}"
    config = parse_config(
        CONFIG.format(
            data=tmp_path / "d",
            bootstrap=kafka_bootstrap,
            group=group,
            partitions=SHARED_PARTITIONS,
        ),
        "dlk.yaml",
    )
    # a mapping's type the worker does not have: only a config built in code gets past the check
    config = msgspec.structs.replace(config, event_types=[])
    cases = _cases(n)
    good = _record("apps", f"h-{n}", b'{"message": "installed z", "app": "z", "action": "install"}')
    values = [value for value, _ in cases] + [good]
    key = f"dl-{n}".encode()  # one key: one partition, in this order
    bus = open_bus(config)
    assert isinstance(bus, KafkaBus)
    try:
        raw = _run_worker(config, bus, group, values, key)
        positions = set(raw.values())
        letters = [json.loads(v) for _, v in _read_all(bus, [DEADLETTER])]
        letters = [letter for letter in letters if letter["position"] in positions]
        assert len(letters) == len(cases)  # one each, none twice
        by_position = {letter["position"]: letter for letter in letters}
        for value, letter in cases:
            assert by_position[raw[value]] == {**letter, "position": raw[value]}

        parsed = [json.loads(v) for _, v in _read_all(bus, [PARSED])]
        parsed = [p for p in parsed if p.get("position") in positions]
        login = raw[cases[-1][0]]  # the unconfigured type's record was decoded: parsed, lettered
        assert sorted(p["position"] for p in parsed) == sorted([raw[good], login])

        # events made from this test's input (ids derive from input positions): the good one only
        ids = {position_event_id(*_split(p), i): p for p in positions for i in range(4)}
        events = _read_all(bus, [topic_for_type(t) for t in BUILTIN_TYPES])
        made = [(topic, json.loads(v)) for topic, v in events]
        made = [(topic, e) for topic, e in made if e["header"]["id"] in ids]
        assert [(topic, ids[e["header"]["id"]], e["body"]) for topic, e in made] == [
            ("events.APP_STATUS", raw[good], {"app": "z"})
        ]
    finally:
        bus.close()


def _run_worker(
    config: Config, bus: KafkaBus, group: str, values: list[bytes], key: bytes
) -> dict[bytes, str]:
    """Put ``values`` on ``logs.raw`` under ``key``, run one worker until it has committed past
    them, and return where each one is on ``logs.raw``."""
    worker = FactoryWorker(config, bus, StatsRegistry("dl"))
    try:
        producer = bus.producer()
        for value in values:
            producer.produce(RAW, value, key)
        producer.flush(30)
        producer.close()
        raw = _positions(bus, key)
        assert sorted(raw) == sorted(values)  # each input once on logs.raw
        [partition] = {_split(p)[1] for p in raw.values()}
        last = max(_split(p)[2] for p in raw.values())
        deadline = time.monotonic() + 180
        while bus.committed(group, RAW).get(partition, 0) <= last:
            assert time.monotonic() < deadline, "the worker did not commit past this test's input"
            worker.process_batch(worker.consumer.poll(200, timeout=0.5))
        return raw
    finally:
        worker.close()


def _split(position: str) -> tuple[str, int, int]:
    topic, partition, offset = position.rsplit("/", 2)
    return topic, int(partition), int(offset)


def _positions(bus: KafkaBus, key: bytes) -> dict[bytes, str]:
    """Value -> position of this test's messages on ``logs.raw`` (told apart by their key)."""
    ends = {(RAW, p): hi for p, (_lo, hi) in bus.watermarks(RAW).items()}
    consumer = bus.consumer(None, [RAW], "earliest")
    out: dict[bytes, str] = {}
    try:
        deadline = time.monotonic() + 120
        while any(consumer.position().get(tp, 0) < hi for tp, hi in ends.items()):
            assert time.monotonic() < deadline, "could not read logs.raw to its end"
            for m in consumer.poll(5000, timeout=0.5):
                if m.key == key:
                    assert m.value not in out, "an input twice on logs.raw"
                    out[m.value] = f"{m.topic}/{m.partition}/{m.offset}"
    finally:
        consumer.close()
    return out
