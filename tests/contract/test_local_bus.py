"""Hardening of the embedded bus beyond the shared contract: failures that only an SQLite
implementation can have (write errors in the producer thread, dead or reused pids, schema
versions) and fencing across a lost-and-retaken lease."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.helpers.bus import drain, read_all
from tests.helpers.contract import Child
from tests.helpers.waiting import wait_for

from logfactory.bus.base import BusError, FencedError, TopicSpec
from logfactory.bus.local import LocalBus


def _dir_spec(directory: Path, **opts: object) -> str:
    return json.dumps({"kind": "local", "directory": str(directory), **opts})


def test_producer_write_error_reaches_every_later_call(tmp_path: Path) -> None:
    bus = LocalBus(tmp_path)
    bus.ensure_topic(TopicSpec("t", 1))
    producer = bus.producer()
    producer.produce("t", b"ok")
    producer.flush()
    with sqlite3.connect(bus.path) as raw:  # the topic's table disappears under the producer
        raw.execute("ALTER TABLE t1 RENAME TO broken")
    producer.produce("t", b"lost")
    with pytest.raises(BusError, match="no such table"):
        producer.flush(timeout=10)
    with pytest.raises(BusError, match="1 message"):
        producer.produce("t", b"after")
    with pytest.raises(BusError, match="no such table"):
        producer.close()
    bus.close()


def test_payloads_must_be_bytes(tmp_path: Path) -> None:
    bus = LocalBus(tmp_path)
    producer = bus.producer()
    with pytest.raises(TypeError, match="value must be bytes"):
        producer.produce("t", "text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="key must be bytes"):
        producer.produce("t", b"v", 7)  # type: ignore[arg-type]
    producer.produce("t", bytearray(b"ba"), memoryview(b"mk"))  # type: ignore[arg-type]
    producer.close()
    [m] = read_all(bus, "t")
    assert (m.key, m.value) == (b"mk", b"ba")
    assert type(m.value) is bytes
    bus.close()


def _member_joined(spawn: Callable[..., Child], tmp_path: Path, bus: LocalBus) -> Child:
    """A child member that owns every partition of topic ``t`` in group ``g``."""
    child = spawn("member", _dir_spec(tmp_path), "t", "g")
    child.expect("ready")
    child.send("step")
    assert json.loads(child.line())["assignment"] == [0, 1]
    return child


def test_zombie_member_is_dead_at_once(tmp_path: Path, spawn: Callable[..., Child]) -> None:
    bus = LocalBus(tmp_path, session_timeout_ms=60_000)
    bus.ensure_topic(TopicSpec("t", 2))
    child = _member_joined(spawn, tmp_path, bus)
    child.kill(reap=False)
    stat = Path(f"/proc/{child.proc.pid}/stat")
    wait_for(lambda: stat.read_text().rsplit(")", 1)[1].split()[0] == "Z", what="a zombie")
    survivor = bus.consumer("g", ["t"])
    wait_for(lambda: (survivor.poll(1, 0.05), len(survivor.assignment()) == 2)[1], timeout=10)
    assert stat.exists(), "the zombie must still exist while we take over"
    child.proc.wait()
    survivor.close()
    bus.close()


def test_member_whose_pid_was_reused_is_dead(tmp_path: Path, spawn: Callable[..., Child]) -> None:
    bus = LocalBus(tmp_path, session_timeout_ms=60_000)
    bus.ensure_topic(TopicSpec("t", 2))
    child = _member_joined(spawn, tmp_path, bus)
    child.kill()
    with sqlite3.connect(bus.path) as raw:  # a live process now carries the dead member's pid
        raw.execute("UPDATE members SET pid=?", (os.getpid(),))
    survivor = bus.consumer("g", ["t"])
    wait_for(lambda: (survivor.poll(1, 0.05), len(survivor.assignment()) == 2)[1], timeout=10)
    survivor.close()
    bus.close()


def test_transaction_is_fenced_after_losing_and_retaking_a_partition(tmp_path: Path) -> None:
    bus = LocalBus(tmp_path, session_timeout_ms=300)
    bus.ensure_topic(TopicSpec("in", 1))
    bus.ensure_topic(TopicSpec("out", 1))
    producer = bus.producer()
    for i in range(5):
        producer.produce("in", b"%d" % i)
    producer.close()
    slow = bus.consumer("g", ["in"])
    batch = drain(slow, 5)

    def commit_after_losing_and_retaking() -> None:
        with bus.transaction(slow) as tx:
            tx.produce("out", b"from the old lease")
            tx.commit_offsets({("in", 0): 5})
            other = LocalBus(tmp_path, session_timeout_ms=300).consumer("g", ["in"])
            wait_for(
                lambda: (other.poll(1, 0.05), other.assignment() == [("in", 0)])[1], timeout=10
            )
            other.close()  # the partition is free again and the slow member takes it back
            wait_for(lambda: (slow.poll(1, 0.05), slow.assignment() == [("in", 0)])[1], timeout=10)

    with pytest.raises(FencedError):
        commit_after_losing_and_retaking()
    assert bus.watermarks("out") == {0: (0, 0)}
    assert bus.committed("g", "in") == {}
    assert len(batch) == 5
    slow.close()
    bus.close()


def test_member_reads_stored_data_after_taking_over_by_itself(tmp_path: Path) -> None:
    """No other connection writes during the takeover, so SQLite's data_version stays put."""
    bus = LocalBus(tmp_path, session_timeout_ms=300)
    bus.ensure_topic(TopicSpec("t", 1))
    producer = bus.producer()
    producer.produce("t", b"waiting")
    producer.close()
    holder = bus.consumer("g", ["t"])
    assert holder.assignment() == [("t", 0)]  # joins, then never polls again
    reader = LocalBus(tmp_path, session_timeout_ms=300).consumer("g", ["t"])
    assert reader.poll(1, timeout=0.1) == []
    assert [m.value for m in drain(reader, 1, timeout=10)] == [b"waiting"]
    reader.close()
    holder.close()
    bus.close()


def test_unknown_schema_is_refused(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "bus.sqlite3") as raw:
        raw.execute("CREATE TABLE topics (name TEXT)")
    with pytest.raises(BusError, match="schema 0"):
        LocalBus(tmp_path)
    with sqlite3.connect(tmp_path / "bus.sqlite3") as raw:
        raw.execute("PRAGMA user_version=99")
    with pytest.raises(BusError, match="schema 99"):
        LocalBus(tmp_path)


def test_first_layout_is_migrated_with_its_messages_and_offsets(tmp_path: Path) -> None:
    old = OLD_LAYOUT.format(rid=(1 << 40) | 0)
    with sqlite3.connect(tmp_path / "bus.sqlite3") as raw:
        raw.executescript(old)
    bus = LocalBus(tmp_path)
    assert bus.watermarks("t") == {0: (0, 0), 1: (0, 1)}
    assert bus.committed("g", "t") == {1: 0}
    consumer = bus.consumer("g", ["t"])
    assert [(m.partition, m.value) for m in drain(consumer, 1)] == [(1, b"kept")]
    consumer.commit()
    consumer.close()
    assert bus.committed("g", "t") == {1: 1}
    bus.close()


OLD_LAYOUT = """
CREATE TABLE topics (
    name TEXT PRIMARY KEY, id INTEGER NOT NULL UNIQUE, partitions INTEGER NOT NULL,
    compact INTEGER NOT NULL DEFAULT 0, retention_ms INTEGER, retention_bytes INTEGER);
CREATE TABLE heads (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next INTEGER NOT NULL,
    bytes INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (topic, partition)) WITHOUT ROWID;
CREATE TABLE offsets (
    grp TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL, next INTEGER NOT NULL,
    PRIMARY KEY (grp, topic, partition)) WITHOUT ROWID;
CREATE TABLE members (
    grp TEXT NOT NULL, member TEXT NOT NULL, pid INTEGER NOT NULL, heartbeat_ms INTEGER NOT NULL,
    PRIMARY KEY (grp, member)) WITHOUT ROWID;
CREATE TABLE leases (
    grp TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL, member TEXT NOT NULL,
    PRIMARY KEY (grp, topic, partition)) WITHOUT ROWID;
INSERT INTO topics VALUES ('t', 1, 2, 0, NULL, NULL);
CREATE TABLE t1 (rid INTEGER PRIMARY KEY, ts INTEGER NOT NULL, key BLOB, value BLOB NOT NULL);
INSERT INTO t1 VALUES ({rid}, 0, NULL, X'6b657074');
INSERT INTO heads VALUES ('t', 0, 0, 0), ('t', 1, 1, 4);
INSERT INTO offsets VALUES ('g', 't', 1, 0);
INSERT INTO members VALUES ('g', 'old-member', 1, 0);
INSERT INTO leases VALUES ('g', 't', 1, 'old-member');
"""


def test_incremental_compaction_on_a_big_topic(tmp_path: Path) -> None:
    bus = LocalBus(tmp_path)
    bus.ensure_topic(TopicSpec("c", 2, compact=True))
    producer = bus.producer()
    for i in range(30_000):
        producer.produce("c", b"%d" % i, b"k%d" % (i % 3000))
    producer.flush()
    assert bus.maintain() == {"c": 27_000}
    assert bus.maintain() == {"c": 0}
    for i in range(500):
        producer.produce("c", b"again%d" % i, b"k%d" % i)
    producer.close()
    assert bus.maintain() == {"c": 500}
    stored = {m.key: m.value for m in read_all(bus, "c")}
    assert len(stored) == 3000
    assert stored[b"k7"] == b"again7"
    assert stored[b"k2999"] == b"29999"
    bus.close()


def test_keyless_messages_spread_round_robin(tmp_path: Path) -> None:
    bus = LocalBus(tmp_path)
    bus.ensure_topic(TopicSpec("t", 4))
    for _ in range(3):  # single-message batches, all within the same millisecond or so
        producer = bus.producer()
        for _ in range(2):
            producer.produce("t", b"x")
            producer.flush()
        producer.close()
    producer = bus.producer()
    for _ in range(400):
        producer.produce("t", b"y")
    producer.close()
    counts = [hi for _lo, hi in bus.watermarks("t").values()]
    assert sum(counts) == 406
    assert max(counts) - min(counts) <= 4
    bus.close()


def test_closed_handles_raise_bus_errors(tmp_path: Path) -> None:
    bus = LocalBus(tmp_path)
    consumer = bus.consumer(None, ["t"])
    consumer.close()
    with pytest.raises(BusError, match="closed"):
        consumer.poll(1, timeout=0)
    bus.close()
    bus.close()
    with pytest.raises(BusError, match="closed"):
        bus.watermarks("t")
