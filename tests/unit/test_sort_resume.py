"""Sort stage after a restore: open records wait for the partition's next line.

Why: the crash matrix (tests/e2e/test_crash_matrix_*.py) found traces cut in two after a
restart or a partition hand-over. Open records kept their wall-clock deadlines, which ran out
while the partition had no owner; the new owner then emitted them as soon as it restored them,
before it had read the next lines that were already waiting on the bus. Now a restore gives
them until the partition's first line (or RESUME_GRACE_NS), and their timeouts count from it.
"""

from __future__ import annotations

from logfactory.config import parse_config
from logfactory.factory.model import Position
from logfactory.factory.sort import RESUME_GRACE_NS, Sorter
from logfactory.factory.workshops import build_workshops
from logfactory.record import make_record

CONFIG = """
workshops:
  syslog: {format: syslog, multiline: {timeout: 250ms}}
"""
MS = 1_000_000
T0 = 1_795_300_000_000_000_000
TRACE = [
    "<11>Nov 21 22:38:28 cn01 worker[7]: job crashed",
    "<11>Nov 21 22:38:28 cn01 worker[7]: Traceback (most recent call last):",
    '<11>Nov 21 22:38:28 cn01 worker[7]:   File "/opt/run.py", line 4, in main',
    "<11>Nov 21 22:38:28 cn01 worker[7]: ValueError: bad record",
    "<11>Nov 21 22:38:29 cn01 worker[7]: job done",
]


def _make() -> Sorter:
    config = parse_config(CONFIG)
    return Sorter(config, build_workshops(config))


def _feed(sorter: Sorter, index: int, now: int) -> list[str]:
    record = make_record("syslog", "cn01", TRACE[index], {"peer": "10.0.0.1"}, T0)
    return [r.line for r, _p, _w in sorter.feed(record, Position("logs.raw", 0, index), now)]


def test_a_restored_trace_waits_for_the_partitions_next_line_then_merges_whole() -> None:
    before = _make()
    assert _feed(before, 0, T0) == []
    assert _feed(before, 1, T0) == []
    snapshot = before.snapshot()

    later = T0 + 5_000 * MS  # restored 5 s later: the 250 ms timeout ran out meanwhile
    after = _make()
    after.restore(snapshot, later)
    assert after.flush_due(later) == []
    assert after.flush_due(later + 2_000 * MS) == []  # the backlog is still being fetched
    deadline = after.next_deadline()
    assert deadline is not None
    assert deadline >= later + RESUME_GRACE_NS
    now = later + 3_000 * MS  # the partition's first line arrives
    assert _feed(after, 2, now) == []
    assert _feed(after, 3, now) == []
    assert after.flush_due(now) == []
    assert _feed(after, 4, now) == ["\n".join(TRACE[:4])]  # whole, every line once
    assert after.pending() == 1  # "job done" waits as the stream's single-line record
    assert after.flush_due(now + 249 * MS) == []  # timeouts count from the first line again
    assert [r.line for r, _p, _w in after.flush_due(now + 250 * MS)] == [TRACE[4]]


def test_a_quiet_partitions_open_record_goes_out_after_the_grace() -> None:
    before = _make()
    _feed(before, 0, T0)
    _feed(before, 1, T0)
    after = _make()
    restored = T0 + 5_000 * MS
    after.restore(before.snapshot(), restored)
    assert after.flush_due(restored + RESUME_GRACE_NS - 1) == []
    out = after.flush_due(restored + RESUME_GRACE_NS)
    assert [r.line for r, _p, _w in out] == ["\n".join(TRACE[:2])]
    assert after.pending() == 0


def test_restore_without_a_time_keeps_the_old_deadlines() -> None:
    before = _make()
    _feed(before, 0, T0)
    _feed(before, 1, T0)
    again = _make()
    again.restore(before.snapshot())
    assert len(again.flush_due(T0 + 300 * MS)) == 1
