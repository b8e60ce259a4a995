"""Reading a bus back in tests: a consumer up to a count, a topic up to its end, a key for a
partition, and the stored layout of an older local bus."""

from __future__ import annotations

import time
from pathlib import Path

from logfactory.bus import open_bus
from logfactory.bus.base import Bus, Consumer, Message, partition_for_key
from logfactory.config import load_config


def drain(consumer: Consumer, count: int, timeout: float = 20.0, batch: int = 500) -> list[Message]:
    """Poll until ``count`` messages arrived (fails after ``timeout`` seconds)."""
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(out) < count:
        assert time.monotonic() < deadline, f"got {len(out)} of {count} messages in {timeout}s"
        out += consumer.poll(min(batch, count - len(out)), timeout=0.2)
    return out


def read_all(bus: Bus, topic: str) -> list[Message]:
    """Every message stored in ``topic`` now, through a group-less consumer."""
    ends = {p: high for p, (_low, high) in bus.watermarks(topic).items()}
    consumer = bus.consumer(None, [topic], "earliest")
    try:
        out: list[Message] = []
        while any(consumer.position().get((topic, p), 0) < end for p, end in ends.items()):
            before = consumer.position()
            batch = consumer.poll(5000, timeout=5.0)
            # a poll may return nothing but step over transaction markers (Kafka), which
            # occupy offsets without being messages: that is progress, not a stall
            assert batch or consumer.position() != before, (
                f"{topic}: stalled at {consumer.position()} before {ends}"
            )
            out += [m for m in batch if m.offset < ends[m.partition]]
        return out
    finally:
        consumer.close()


def key_for(partition: int, partitions: int, prefix: str = "key") -> bytes:
    """A key that lands in ``partition`` (buses must place keys by ``partition_for_key``)."""
    return next(
        key
        for i in range(10_000)
        if partition_for_key(key := f"{prefix}{i}".encode(), partitions) == partition
    )


def read_node_topic(config: Path, topic: str) -> list[tuple[int, int, bytes]]:
    """(partition, offset, value) of every message on ``topic`` of the bus the node config
    ``config`` names, up to its end as of now."""
    bus: Bus = open_bus(load_config(config))
    try:
        ends = {p: hi for p, (_lo, hi) in bus.watermarks(topic).items()}
        consumer = bus.consumer(None, [topic], "earliest")
        out: list[tuple[int, int, bytes]] = []
        deadline = time.monotonic() + 60
        try:
            while any(consumer.position().get((topic, p), 0) < hi for p, hi in ends.items()):
                assert time.monotonic() < deadline, f"reading {topic} to {ends} took over 60 s"
                for m in consumer.poll(5000, timeout=0.5):
                    if m.offset < ends.get(m.partition, 0):
                        out.append((m.partition, m.offset, m.value))
        finally:
            consumer.close()
        return out
    finally:
        bus.close()


# the local bus's stored layout at version 2 (tests of the migration and of damaged files)
V2_LAYOUT = """
CREATE TABLE topics (
    name TEXT PRIMARY KEY, id INTEGER NOT NULL UNIQUE, partitions INTEGER NOT NULL,
    compact INTEGER NOT NULL DEFAULT 0, retention_ms INTEGER, retention_bytes INTEGER);
CREATE TABLE heads (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next INTEGER NOT NULL,
    bytes INTEGER NOT NULL DEFAULT 0, compacted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (topic, partition)) WITHOUT ROWID;
CREATE TABLE offsets (
    grp TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL, next INTEGER NOT NULL,
    PRIMARY KEY (grp, topic, partition)) WITHOUT ROWID;
CREATE TABLE members (
    grp TEXT NOT NULL, member TEXT NOT NULL, pid INTEGER NOT NULL, started INTEGER NOT NULL,
    heartbeat_ms INTEGER NOT NULL, PRIMARY KEY (grp, member)) WITHOUT ROWID;
CREATE TABLE leases (
    grp TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL, member TEXT NOT NULL,
    epoch INTEGER NOT NULL, PRIMARY KEY (grp, topic, partition)) WITHOUT ROWID;
CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO meta VALUES ('epoch', 0);
INSERT INTO topics VALUES ('t', 1, 1, 0, NULL, NULL);
CREATE TABLE t1 (rid INTEGER PRIMARY KEY, ts INTEGER NOT NULL, key BLOB, value BLOB NOT NULL);
INSERT INTO t1 VALUES (0, 0, X'6b', X'6f6c6430'), (1, 0, NULL, X'6f6c6431');
INSERT INTO heads VALUES ('t', 0, 2, 8, 0);
INSERT INTO offsets VALUES ('g', 't', 0, 1);
PRAGMA user_version=2;
"""
