"""A worker that is behind does not time out the traces whose next lines it has yet to read.

The multi-line timeout is wall-clock time. A backlog (after a restart, an outage, a burst) is
read faster than it was written, but not instantly: with the demo's 250 ms, a second spent
catching up used to cut every trace open across it, although its next lines were already on
the bus (the whole-node crash test found it). A worker whose poll came back full is behind and
lets held records wait (up to ``CATCH_UP_GRACE_NS`` past their timeout); one that has caught up
times them out as before.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.helpers.worker import bus_of, read_topic

from logfactory.config import Config, parse_config
from logfactory.factory import worker as worker_module
from logfactory.factory.worker import FactoryWorker
from logfactory.record import encode_record, make_record
from logfactory.stats import StatsRegistry
from logfactory.topics import PARSED, RAW

TRACE = [
    "Dec  6 07:00:00 app01 svc[7]: Traceback (most recent call last):",
    'Dec  6 07:00:00 app01 svc[7]:   File "/srv/app.py", line 3, in <module>',
    "Dec  6 07:00:00 app01 svc[7]:     main()",
    "Dec  6 07:00:00 app01 svc[7]: ValueError: boom",
]
BATCH = 10


def _config(tmp_path: Path, batch_size: int) -> Config:
    return parse_config(
        f"""
node: {{name: t, data_dir: {tmp_path / "d"}}}
bus: {{partitions: 1}}
workshops:
  syslog: {{format: syslog, multiline: {{timeout: 250ms}}}}
factory: {{batch_size: {batch_size}}}
""",
        "catch-up.yaml",
    )


def _run(tmp_path: Path, batch_size: int, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The trace's first two lines, 3 batches of other lines, the rest of the trace; each poll
    of BATCH records costs the worker a full second of wall clock (a slow backlog)."""
    config = _config(tmp_path, batch_size)
    lines = TRACE[:2]
    lines += [f"Dec  6 07:00:01 web0{i % 5} nginx[9]: GET /{i} 200" for i in range(3 * BATCH)]
    lines += TRACE[2:]
    bus = bus_of(config)
    try:
        producer = bus.producer()
        for line in lines:
            producer.produce(RAW, encode_record(make_record("syslog", "relay", line)), b"relay")
        producer.flush()
        producer.close()
        clock = [1_765_000_000_000_000_000]

        def slow_clock() -> int:
            clock[0] += 1_000_000_000
            return clock[0]

        monkeypatch.setattr(worker_module, "now_ns", slow_clock)
        worker = FactoryWorker(config, bus, StatsRegistry("test"))
        try:
            for _ in range(len(lines) // BATCH + 1):
                worker.process_batch(worker.consumer.poll(BATCH, timeout=0.5))
            worker.process_batch([])  # caught up: what is due now times out
        finally:
            worker.close()
    finally:
        bus.close()
    return [p["message"] for p in read_topic(config, PARSED) if p["fields"].get("program") == "svc"]


def test_a_trace_open_across_a_backlog_comes_out_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages = _run(tmp_path, BATCH, monkeypatch)  # every poll full: behind throughout
    assert messages == ["\n".join(line.split(": ", 1)[1] for line in TRACE)]


def test_a_worker_that_has_caught_up_still_times_a_trace_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: polls that come back short (batch_size above them) are a worker with
    nothing waiting, and a second between two lines is past the 250 ms timeout."""
    messages = _run(tmp_path, 1000, monkeypatch)
    assert len(messages) == 2, messages
    assert messages[0] == "Traceback (most recent call last):\n" + TRACE[1].split(": ", 1)[1]
