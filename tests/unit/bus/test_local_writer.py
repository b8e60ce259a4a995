"""The local bus's offloaded producer: the same contract as LocalProducer, with the appends in a
child process - order, completeness, durability at flush, backpressure, and every way the child
can end (killed, failed write, parent gone, clean close) surfacing as a clear BusError."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers.bus import read_all
from tests.helpers.waiting import wait_for

from logfactory.bus.base import BusError, TopicSpec, partition_for_key
from logfactory.bus.local import LocalBus
from logfactory.bus.local.db import process_start
from logfactory.bus.local.writer import OffloadProducer


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[LocalBus]:
    handle = LocalBus(tmp_path / "bus")
    yield handle
    handle.close()


def offload(bus: LocalBus, max_buffered: int = 100_000) -> OffloadProducer:
    producer = bus.producer(offload=True, max_buffered=max_buffered)
    assert isinstance(producer, OffloadProducer)
    return producer


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_hook_returns_the_offloaded_producer(bus: LocalBus) -> None:
    producer = bus.producer(offload=True, max_buffered=10)
    try:
        assert isinstance(producer, OffloadProducer)
        assert process_start(producer.writer_pid) is not None
    finally:
        producer.close()


def test_order_and_completeness_across_topics_and_partitions(bus: LocalBus) -> None:
    layout = {"a": 4, "b": 3, "c": 1}
    for name, partitions in layout.items():
        bus.ensure_topic(TopicSpec(name, partitions))
    producer = offload(bus, max_buffered=3_000)
    sent: dict[str, list[tuple[bytes | None, bytes]]] = defaultdict(list)
    for i in range(30_000):
        topic = "abc"[i % 3]
        key = None if i % 11 == 0 else f"k{i % 13}".encode()
        value = f"{topic}:{i}".encode()
        producer.produce(topic, value, key)
        sent[topic].append((key, value))
    producer.flush()
    assert producer.pending() == 0
    producer.close()
    for topic, partitions in layout.items():
        got = read_all(bus, topic)
        assert sorted(m.value for m in got) == sorted(v for _k, v in sent[topic])  # no loss/dup
        by_partition: dict[int, list[bytes]] = defaultdict(list)
        for m in sorted(got, key=lambda m: (m.partition, m.offset)):
            if m.key is not None:
                assert m.partition == partition_for_key(m.key, partitions)
            by_partition[m.partition].append(m.value)
        for p, values in by_partition.items():  # per partition: produce order
            here = set(values)
            sent_here = [v for _k, v in sent[topic] if v in here]
            assert values == sent_here, f"{topic}[{p}] out of order"


def test_flush_is_durable_for_another_handle(bus: LocalBus) -> None:
    producer = offload(bus)
    try:
        for i in range(5_000):
            producer.produce("durable", b"%d" % i, b"k%d" % (i % 5))
        producer.flush(timeout=30)
        other = LocalBus(bus.directory)  # another process's view of the same file
        try:
            assert sum(h for _lo, h in other.watermarks("durable").values()) == 5_000
        finally:
            other.close()
    finally:
        producer.close()


def test_keys_none_empty_and_binary_values_round_trip(bus: LocalBus) -> None:
    bus.ensure_topic(TopicSpec("bin", 1))
    cases: list[tuple[bytes | None, bytes]] = [
        (None, bytes(range(256))),
        (b"", b""),
        (b"\x00\xff", b"\x00" * 10_000),
        (None, "é☃".encode()),
        (b"k", b"\x80\x81\xc0"),
    ]
    producer = offload(bus)
    for key, value in cases:
        producer.produce("bin", value, key)
    producer.produce("bin", bytearray(b"from-bytearray"), memoryview(b"mv"))  # type: ignore[arg-type]
    producer.close()  # close alone makes everything durable
    got = [(m.key, m.value) for m in sorted(read_all(bus, "bin"), key=lambda m: m.offset)]
    assert got == [*cases, (b"mv", b"from-bytearray")]
    assert all(type(v) is bytes for _k, v in got)


def test_non_bytes_values_are_refused_in_the_caller(bus: LocalBus) -> None:
    producer = offload(bus)
    try:
        with pytest.raises(TypeError, match="must be bytes"):
            producer.produce("t", "text")  # type: ignore[arg-type]
        producer.produce("t", b"ok")
        producer.flush(timeout=30)
    finally:
        producer.close()
    assert [m.value for m in read_all(bus, "t")] == [b"ok"]


def test_backpressure_blocks_produce_at_max_buffered(bus: LocalBus) -> None:
    producer = offload(bus, max_buffered=500)
    os.kill(producer.writer_pid, signal.SIGSTOP)  # the child makes no progress
    try:
        done = threading.Event()

        def produce_all() -> None:
            for i in range(2_000):
                producer.produce("bp", b"%d" % i, b"k")
            done.set()

        thread = threading.Thread(target=produce_all)
        thread.start()
        wait_for(lambda: producer.pending() == 500, what="500 pending")
        assert not done.is_set()  # blocked, not buffering without bound
        assert producer.pending() == 500
    finally:
        os.kill(producer.writer_pid, signal.SIGCONT)
    thread.join(timeout=30)
    assert done.is_set()
    producer.flush(timeout=30)
    producer.close()
    assert [m.value for m in read_all(bus, "bp")] == [b"%d" % i for i in range(2_000)]


def test_killed_child_is_a_clear_error_everywhere(bus: LocalBus) -> None:
    producer = offload(bus)
    producer.produce("k", b"before")
    producer.flush(timeout=30)
    os.kill(producer.writer_pid, signal.SIGKILL)
    producer.produce("k", b"lost")
    with pytest.raises(BusError, match=r"killed by SIGKILL.*not written"):
        producer.flush(timeout=30)
    with pytest.raises(BusError, match="SIGKILL"):
        producer.produce("k", b"after")
    with pytest.raises(BusError, match="SIGKILL"):
        producer.close()
    assert process_start(producer.writer_pid) is None  # reaped: no zombie
    assert [m.value for m in read_all(bus, "k")] == [b"before"]


def test_failed_write_reports_the_childs_error(bus: LocalBus) -> None:
    producer = offload(bus)
    producer.produce("gone", b"1")
    producer.flush(timeout=30)
    (tid,) = bus._db.query("SELECT id FROM topics WHERE name='gone'")[0]
    conn = sqlite3.connect(bus.path)
    conn.execute(f"DROP TABLE t{tid}")  # the child's next insert must fail
    conn.commit()
    conn.close()
    producer.produce("gone", b"2")
    with pytest.raises(BusError, match=r"exited with code 1: OperationalError: no such table"):
        producer.flush(timeout=30)
    with pytest.raises(BusError, match="no such table"):
        producer.close()


def test_a_child_that_cannot_start_fails_the_constructor(
    bus: LocalBus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "fake-python"
    fake.write_text("#!/bin/sh\necho 'cannot open the bus' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake))
    before = open_fds()
    with pytest.raises(BusError, match=r"exited with code 3: cannot open the bus"):
        OffloadProducer(bus)
    assert open_fds() == before


def test_clean_close_leaves_no_process_and_no_fd(bus: LocalBus) -> None:
    before = open_fds()
    producer = offload(bus)
    pid = producer.writer_pid
    for i in range(1_000):
        producer.produce("c", b"%d" % i)
    producer.close()  # no flush: close writes what is queued
    producer.close()  # idempotent
    assert process_start(pid) is None
    assert open_fds() == before
    assert sum(h for _lo, h in bus.watermarks("c").values()) == 1_000
    producer.flush()  # nothing pending: a no-op
    with pytest.raises(BusError, match="closed"):
        producer.produce("c", b"late")


def test_close_wakes_a_producer_blocked_on_backpressure(bus: LocalBus) -> None:
    producer = offload(bus, max_buffered=10)
    os.kill(producer.writer_pid, signal.SIGSTOP)
    errors: list[BaseException] = []

    def produce_many() -> None:
        try:
            for _ in range(100):
                producer.produce("w", b"x")
        except BusError as exc:
            errors.append(exc)

    thread = threading.Thread(target=produce_many)
    thread.start()
    wait_for(lambda: producer.pending() == 10, what="blocked producer")
    closer = threading.Thread(target=producer.close)
    closer.start()
    thread.join(timeout=30)
    assert errors
    assert "closed" in str(errors[0])
    os.kill(producer.writer_pid, signal.SIGCONT)
    closer.join(timeout=30)
    assert not closer.is_alive()
    assert sum(h for _lo, h in bus.watermarks("w").values()) == 10


PARENT = textwrap.dedent(
    """
    import sys
    from logfactory.bus.local import LocalBus
    bus = LocalBus(sys.argv[1])
    producer = bus.producer(offload=True)
    for i in range(20_000):
        producer.produce("p", b"%d" % i, b"k")
    producer.flush()
    for i in range(20_000, 40_000):
        producer.produce("p", b"%d" % i, b"k")
    print(producer.writer_pid, flush=True)
    sys.stdin.read()  # until the test kills us
    """
)


def test_parent_death_ends_the_child_after_it_wrote_what_it_received(bus: LocalBus) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(bus.directory)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
    finally:
        parent.kill()
        parent.wait(timeout=10)
        for stream in (parent.stdin, parent.stdout):
            if stream is not None:
                stream.close()
    wait_for(lambda: process_start(child) is None, timeout=30, what="writer exit")
    values = [int(m.value) for m in sorted(read_all(bus, "p"), key=lambda m: m.offset)]
    assert len(values) >= 20_000  # everything flushed, plus whatever arrived whole
    assert values == list(range(len(values)))  # a prefix: no gap, no duplicate
