"""The reference corpora (README.md) for tests: their lines as a file tail or rsyslog sends them,
their goldens, a real factory worker run over them, and the comparison of its ``logs.parsed``
records with a golden."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.worker import bus_of, put_raw

from logfactory.config import Config, parse_config
from logfactory.factory import worker as worker_module
from logfactory.factory.worker import FactoryWorker
from logfactory.record import Record, make_record, now_ns
from logfactory.stats import StatsRegistry
from logfactory.topics import RAW

HERE = Path(__file__).resolve().parent
MANIFEST: dict[str, dict[str, Any]] = json.loads((HERE / "corpora.json").read_text())
NAMES = list(MANIFEST)
SYSLOG_NAMES = [name for name, m in MANIFEST.items() if m["syslog"]]

# the multi-line timeout is an hour: no record is cut because the machine is slow; the run
# ends by moving the worker's clock past it once every line has been read
CONFIG = """
node: {{name: corpora, data_dir: {data}}}
bus: {{partitions: 1}}
workshops:
  syslog: {{format: syslog, multiline: {{timeout: 1h}}}}
  app: {{format: syslog, multiline: {{timeout: 1h}}}}
  slurmctld: {{format: slurm, mine: true}}
factory:
  group: corpora
  new_patterns: {new_patterns}
  routes: {{auth: syslog, messages: syslog, kernel: syslog, java: app, python: app}}
"""

RELAY = "10.1.0.250"  # the rsyslog relay that forwards every host's lines over one TCP connection
# PRI of what rsyslog forwards, by program (facility * 8 + severity); the rest user.notice
PRI = {
    "sshd": 86, "sudo": 85, "su": 85, "CRON": 86, "systemd-logind": 38, "systemd": 30,
    "kernel": 4, "CROND": 78, "dhclient": 30, "NetworkManager": 30, "chronyd": 30,
    "rsyslogd": 46, "slurmd": 30, "smartd": 30, "java": 11, "epilog.py": 11,
}  # fmt: skip
_HEADER = re.compile(r"(Dec +(\d+) (\d\d:\d\d:\d\d)) (\S+) ([^\s\[:]+)")


@dataclass(frozen=True)
class Line:
    number: int  # in the file, 1-based (blank lines count, as in an editor)
    text: str


def lines_of(name: str, day: int) -> list[Line]:
    """The non-empty lines of a corpus' day (the file source skips empty lines)."""
    text = (HERE / name / f"day{day}.log").read_text()
    return [Line(n, t) for n, t in enumerate(text.split("\n"), 1) if t]


def golden(name: str, day: int) -> list[dict[str, Any]]:
    with (HERE / name / f"day{day}.golden.jsonl").open() as fh:
        return [json.loads(row) for row in fh if row.strip()]


def golden_lines(rec: dict[str, Any]) -> list[int]:
    return list(rec.get("lines") or range(rec["first"], rec["last"] + 1))


def forwarded(text: str, form: str) -> str:
    """A file line as rsyslog forwards it: ``traditional`` (RSYSLOG_TraditionalForwardFormat,
    the header as in the file) or ``rfc3339`` (RSYSLOG_ForwardFormat), with the line's PRI."""
    m = _HEADER.match(text)
    assert m is not None, text
    pri = PRI.get(m.group(5), 13)
    if form == "traditional":
        return f"<{pri}>{text}"
    stamp = f"2026-12-{int(m.group(2)):02}T{m.group(3)}.000000+00:00"
    return f"<{pri}>{stamp}{text[m.end(1) :]}"


def records(name: str, day: int, form: str = "file") -> tuple[list[Record], list[Line]]:
    """The records a collector makes of a corpus' day, and the lines (as sent) in the same
    order: ``file``: a file source tailing it on its host (one stream: the path); otherwise
    the syslog source receiving it from the relay over TCP (one stream: the peer)."""
    m = MANIFEST[name]
    out: list[Record] = []
    sent: list[Line] = []
    offset = 0
    for line in lines_of(name, day):
        if form == "file":
            text, host = line.text, m["host"]
            meta: dict[str, Any] = {"path": m["path"], "offset": offset}
            offset += len(text.encode()) + 1
        else:
            text, host = forwarded(line.text, form), RELAY
            meta = {"peer": f"{RELAY}:51514", "transport": "tcp"}
        out.append(make_record(m["tag"], host, text, meta))
        sent.append(Line(line.number, text))
    return out, sent


def config_for(data: Path, new_patterns: bool = False) -> tuple[Config, Path]:
    """The corpora's configuration (its data under ``data``), also written as a file."""
    text = CONFIG.format(data=data, new_patterns=str(new_patterns).lower())
    data.mkdir(parents=True, exist_ok=True)
    path = data.parent / f"{data.name}.yaml"
    path.write_text(text)
    return parse_config(text), path


def run_worker(
    config: Config, input_records: list[Record], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Put ``input_records`` on ``logs.raw``; one real worker reads every one of them, then its
    clock moves past the multi-line timeout, so it emits the records it still holds."""
    bus = bus_of(config)
    try:
        put_raw(bus, input_records)
        worker = FactoryWorker(config, bus, StatsRegistry("corpora"))
        try:
            deadline = time.monotonic() + 120
            read = 0
            while read < len(input_records):
                assert time.monotonic() < deadline, f"the worker read {read} records only"
                batch = worker.consumer.poll(5000, timeout=0.2)
                read += len(batch)
                worker.process_batch(batch)
            later = now_ns() + 2 * 3600 * 1_000_000_000
            monkeypatch.setattr(worker_module, "now_ns", lambda: later)
            worker.process_batch([])
            assert [p.sorter.pending() for p in worker.parts.values()] == [0]
        finally:
            worker.close()
    finally:
        bus.close()


def first_line(parsed: dict[str, Any], sent: list[Line]) -> int:
    """The file line number of a ``logs.parsed`` record's first line (its position on logs.raw,
    partition 0: the index of the record in what was sent)."""
    topic, partition, offset = parsed["position"].rsplit("/", 2)
    assert (topic, partition) == (RAW, "0"), parsed["position"]
    return sent[int(offset)].number


def differences(
    parsed: list[dict[str, Any]], expected: list[dict[str, Any]], sent: list[Line]
) -> Iterator[str]:
    """How the records on ``logs.parsed`` differ from a golden: none, one by one.

    Each golden record must come out once, from its first line, with its program and host and
    exactly its lines: the record's message has as many lines, and each is the end of the line
    sent (the workshop takes the headers off, and the kernel's uptime)."""
    text = {line.number: line.text for line in sent}
    got: dict[int, dict[str, Any]] = {}
    for p in parsed:
        n = first_line(p, sent)
        if n in got:
            yield f"line {n}: two records begin here"
        got[n] = p
    for rec in expected:
        first = rec["first"]
        if first not in got:
            yield f"line {first}: no record begins here, expected {rec}"
            continue
        p = got.pop(first)
        program = p["fields"].get("program")
        if (program, p["host"]) != (rec["program"], rec["host"]):
            yield f"line {first}: program, host {program}, {p['host']}, expected {rec}"
        numbers = golden_lines(rec)
        message = p["message"].split("\n")
        if len(message) != len(numbers):
            yield (
                f"line {first}: a record of {len(message)} lines, expected {len(numbers)} "
                f"(lines {numbers[0]}-{numbers[-1]}): {message[:3]}..."
            )
            continue
        for n, part in zip(numbers, message, strict=True):
            if not part.strip() or not text[n].endswith(part):
                yield f"line {first}: its line {part!r} is not the end of line {n}: {text[n]!r}"
    for n in sorted(got):
        yield f"line {n}: a record the golden does not have: {got[n]['message'][:80]!r}"
