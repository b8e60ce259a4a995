"""A local bus with history, and the damage done to its file: truncated, or half overwritten.

Shared by the unit tests of the bus's refusal, check and repair (tests/unit/bus) and by the
end-to-end test of a node on a damaged, then repaired, bus (tests/e2e)."""

from __future__ import annotations

import os
import random
from pathlib import Path

from tests.helpers.bus import drain, read_all

from logfactory.bus.base import TopicSpec
from logfactory.bus.local import LocalBus

HISTORY = "history"  # a topic no factory reads, so what a node does leaves it as it was

Stored = dict[tuple[int, int], bytes]  # (partition, offset) -> value


def fill(directory: Path, n: int = 20_000) -> Stored:
    """A bus of ``n`` log lines on ``history`` (4 partitions, keyed by host), closed; every
    message by where it is."""
    bus = LocalBus(directory)
    try:
        bus.ensure_topic(TopicSpec(HISTORY, 4))
        producer = bus.producer()
        for i in range(n):
            line = b"Dec  3 09:41:%02d host%d sshd[%d]: Failed password for user%d from 10.0.0.%d"
            producer.produce(
                HISTORY, line % (i % 60, i % 50, 1000 + i, i, i % 250), b"host%d" % (i % 50)
            )
        producer.flush()
        producer.close()
        stored = {(m.partition, m.offset): m.value for m in read_all(bus, HISTORY)}
    finally:
        bus.close()
    assert len(stored) == n
    return stored


def overwrite_second_half(path: Path, seed: int = 13) -> None:
    """Random bytes over the second half of the file, as a disk or a stray write would."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(size // 2)
        f.write(random.Random(seed).randbytes(size - size // 2))
        f.flush()
        os.fsync(f.fileno())


def readable(directory: Path, count: int) -> Stored:
    """The ``count`` messages a bus holds on ``history``, read as any consumer reads them
    (a salvaged bus has gaps where damage was, so reading to the end offsets would wait)."""
    bus = LocalBus(directory, create=False)
    consumer = bus.consumer(None, [HISTORY], "earliest")
    try:
        return {(m.partition, m.offset): m.value for m in drain(consumer, count)}
    finally:
        consumer.close()
        bus.close()
