"""A line that is not UTF-8 is decoded with replacement characters and processed like any other.

Why: one invalid byte in a field an attacker controls (a user name, a URL) used to send the line
to the dead letters, so six failed passwords ending in ``\\xff`` made no PASSWORD_ATTACK. The
records and events made from such a line say so (``invalid_utf8``), and ``logs.parsed`` keeps
its original bytes. Run through a real worker on the demo configuration.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from tests.helpers.worker import demo_config_file, read_topic, run_worker

from logfactory.config import load_config
from logfactory.factory.model import Position
from logfactory.factory.sort import Sorter
from logfactory.factory.workshops import build_workshops
from logfactory.record import make_record, now_ns
from logfactory.topics import DEADLETTER, PARSED

FAILED = [
    f"<38>Dec  7 09:00:0{i} web02 sshd[330{i}]: Failed password for invalid user mallory from "
    f"192.0.2.{i} port 424{i} ssh2 ".encode()
    + b"\xff"
    for i in range(6)
]
OOM = (
    b"<3>Dec  7 09:00:09 cn01 kernel: [ 8812.402101] Out of memory: Killed process 4242 (python3)"
    b" total-vm:1048576kB, anon-rss:524288kB, UID:1001 pgtables:2048kB \xff"
)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def test_lines_with_an_invalid_byte_still_make_their_events(tmp_path: Path) -> None:
    config = load_config(demo_config_file(tmp_path))
    records = [make_record("syslog", "web02", line) for line in FAILED]
    records.append(make_record("syslog", "cn01", OOM))
    records.append(make_record("apps", "app01", b'{"message": "installed caf\xe9", "app": "x"}'))
    run_worker(config, records)

    assert read_topic(config, DEADLETTER) == []
    [attack] = [e for e in read_topic(config, "events.ALERT")
                if e["header"]["subtype"] == "PASSWORD_ATTACK"]  # fmt: skip
    assert attack["body"]["account"] == "mallory"
    assert attack["body"]["invalid_utf8"] is True
    [oom] = [e for e in read_topic(config, "events.ALERT")
             if e["header"]["subtype"] == "OUT_OF_MEMORY"]  # fmt: skip
    assert (oom["body"]["command"], oom["body"]["pid"], oom["body"]["uid"]) == (
        "python3", "4242", "1001",
    )  # fmt: skip
    assert oom["body"]["invalid_utf8"] is True

    parsed = read_topic(config, PARSED)
    assert len(parsed) == len(records)
    assert all(p["fields"]["invalid_utf8"] is True for p in parsed)
    by_host: dict[str, list[dict[str, Any]]] = {}
    for p in parsed:
        by_host.setdefault(p["host"], []).append(p)
    assert [p["original_b64"] for p in by_host["web02"]] == [_b64(line) for line in FAILED]
    assert by_host["web02"][0]["message"].endswith("ssh2 \ufffd")
    [oom_record] = by_host["cn01"]
    assert oom_record["original_b64"] == _b64(OOM)
    [app] = by_host["app01"]
    assert (app["message"], app["fields"]["app"]) == ("installed caf\ufffd", "x")


def test_valid_lines_carry_no_flag(tmp_path: Path) -> None:
    config = load_config(demo_config_file(tmp_path))
    run_worker(config, [make_record("syslog", "web02", FAILED[0][:-2])])
    [parsed] = read_topic(config, PARSED)
    assert "invalid_utf8" not in parsed["fields"]
    assert "original_b64" not in parsed


def test_a_trace_with_an_invalid_byte_merges_and_keeps_every_lines_bytes(tmp_path: Path) -> None:
    """Also across a snapshot: the open trace's bytes survive a worker restart."""
    config = load_config(demo_config_file(tmp_path))
    head = b"Dec  7 09:00:04 web02 python3[88]: "
    lines = [
        head + b"Traceback (most recent call last):",
        head + b'  File "/srv/caf\xe9.py", line 9, in main',
        head + b"KeyError: 'x'",
    ]
    first = Sorter(config, build_workshops(config))
    now = now_ns()
    meta = {"path": "/var/log/messages"}
    for i, line in enumerate(lines[:2]):
        record = make_record("syslog", "web02", line, meta, now)
        assert first.feed(record, Position("logs.raw", 0, i), now) == []
    second = Sorter(config, build_workshops(config))
    second.restore(first.snapshot())
    record = make_record("syslog", "web02", lines[2], meta, now)
    assert second.feed(record, Position("logs.raw", 0, 2), now) == []
    [(merged, _, _)] = second.flush_all()
    assert merged.raw == b"\n".join(lines)

    run_worker(config, [make_record("syslog", "web02", line, meta) for line in lines])
    [parsed] = read_topic(config, PARSED)
    assert parsed["original_b64"] == _b64(b"\n".join(lines))
    assert parsed["fields"]["invalid_utf8"] is True
    assert "caf\ufffd.py" in parsed["message"]
