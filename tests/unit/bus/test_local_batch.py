"""Packed rows in the embedded bus (several messages a row): offsets, keys, partial reads,
seeks, exact size retention through a packed row, compacted topics left alone, the version 2
layout migrated, and a damaged row reported with where it is."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.helpers.bus import V2_LAYOUT, drain, key_for, read_all

from logfactory.bus.base import BusError, TopicSpec
from logfactory.bus.local import LocalBus
from logfactory.bus.local.batch import MAX_BATCH_BYTES, MAX_BATCH_MESSAGES, groups


def _append_together(bus: LocalBus, topic: str, items: list[tuple[bytes | None, bytes]]) -> None:
    """Append ``items`` in one SQLite transaction (a transaction's outputs are one append), so
    consecutive messages of a partition share packed rows."""
    consumer = bus.consumer("appender", [topic])
    with bus.transaction(consumer) as txn:
        for key, value in items:
            txn.produce(topic, value, key)
    consumer.close()


def _rows(bus: LocalBus, topic: str) -> list[tuple[int, int]]:
    """(first offset, messages) of every stored row of ``topic``, in rid order."""
    with sqlite3.connect(bus.path) as raw:
        (tid,) = raw.execute("SELECT id FROM topics WHERE name=?", (topic,)).fetchone()
        return [
            (rid & ((1 << 40) - 1), n)
            for rid, n in raw.execute(f"SELECT rid, n FROM t{tid} ORDER BY rid")
        ]


def test_messages_appended_together_share_rows_and_read_back_exactly(tmp_path: Path) -> None:
    bus = LocalBus(tmp_path)
    bus.ensure_topic(TopicSpec("t", 2))
    items: list[tuple[bytes | None, bytes]] = [
        (key_for(i % 2, 2, f"k{i}-"), b"value %d" % i) for i in range(200)
    ]
    items += [(None, b"keyless %d" % i) for i in range(50)]
    _append_together(bus, "t", items)
    rows = _rows(bus, "t")
    assert max(n for _first, n in rows) == MAX_BATCH_MESSAGES
    assert len(rows) < 30  # 250 messages, not 250 rows
    got = read_all(bus, "t")
    assert sorted((m.value, m.key) for m in got) == sorted((v, k) for k, v in items)
    for p in (0, 1):
        offsets = [m.offset for m in got if m.partition == p]
        assert offsets == list(range(len(offsets)))
    keyed = [(m.partition, m.key) for m in got if m.key is not None]
    assert all(p == int(key.split(b"-")[0][1:]) % 2 for p, key in keyed)
    bus.close()


def test_small_polls_and_seeks_land_inside_packed_rows(tmp_path: Path) -> None:
    bus = LocalBus(tmp_path)
    bus.ensure_topic(TopicSpec("t", 1))
    _append_together(bus, "t", [(None, b"%03d" % i) for i in range(100)])
    consumer = bus.consumer(None, ["t"])
    seen: list[tuple[int, bytes]] = []
    while len(seen) < 100:
        batch = consumer.poll(7, timeout=1.0)  # 7 never divides a 32-message row evenly
        assert 0 < len(batch) <= 7
        seen += [(m.offset, m.value) for m in batch]
    assert seen == [(i, b"%03d" % i) for i in range(100)]
    consumer.seek(("t", 0), 45)
    assert [(m.offset, m.value) for m in consumer.poll(3, timeout=1.0)] == [
        (45, b"045"),
        (46, b"046"),
        (47, b"047"),
    ]
    consumer.seek(("t", 0), 99)
    assert [m.value for m in consumer.poll(10, timeout=1.0)] == [b"099"]
    consumer.close()
    bus.close()


def test_a_group_resumes_from_a_commit_inside_a_packed_row(tmp_path: Path) -> None:
    bus = LocalBus(tmp_path)
    bus.ensure_topic(TopicSpec("t", 1))
    _append_together(bus, "t", [(None, b"m%d" % i) for i in range(64)])
    first = bus.consumer("g", ["t"])
    assert [m.offset for m in drain(first, 10, batch=10)] == list(range(10))
    first.commit()
    first.close()
    second = bus.consumer("g", ["t"])
    assert [m.value for m in drain(second, 54)] == [b"m%d" % i for i in range(10, 64)]
    second.close()
    bus.close()


def test_size_retention_cuts_through_a_packed_row_exactly(tmp_path: Path) -> None:
    bus = LocalBus(tmp_path)
    bus.ensure_topic(TopicSpec("t", 1, retention_bytes=1000))
    _append_together(bus, "t", [(b"k%d" % i, b"%03d" % i + b"." * 97) for i in range(50)])
    assert [n for _first, n in _rows(bus, "t")] == [32, 18]
    assert bus.maintain() == {"t": 40}
    assert bus.watermarks("t") == {0: (40, 50)}
    assert _rows(bus, "t") == [(40, 10)]  # the second row, trimmed and moved to offset 40
    kept = read_all(bus, "t")
    assert [(m.offset, m.key, m.value[:3]) for m in kept] == [
        (i, b"k%d" % i, b"%03d" % i) for i in range(40, 50)
    ]
    assert bus.maintain() == {"t": 0}  # exactly at the limit now: nothing more goes
    bus.close()


def test_size_retention_trims_a_row_down_to_one_plain_message(tmp_path: Path) -> None:
    bus = LocalBus(tmp_path)
    bus.ensure_topic(TopicSpec("t", 1, retention_bytes=100))
    _append_together(bus, "t", [(b"key", b"%03d" % i + b"." * 97) for i in range(5)])
    assert bus.maintain() == {"t": 4}
    assert _rows(bus, "t") == [(4, 1)]
    [last] = read_all(bus, "t")
    assert (last.offset, last.key, last.value[:3]) == (4, b"key", b"004")
    bus.close()


def test_compacted_topics_keep_one_message_a_row(tmp_path: Path) -> None:
    bus = LocalBus(tmp_path)
    bus.ensure_topic(TopicSpec("c", 1, compact=True))
    _append_together(bus, "c", [(b"k%d" % (i % 5), b"v%d" % i) for i in range(40)])
    assert {n for _first, n in _rows(bus, "c")} == {1}
    bus.maintain()
    assert {m.key: m.value for m in read_all(bus, "c")} == {
        b"k%d" % k: b"v%d" % (35 + k) for k in range(5)
    }
    bus.close()


def test_a_damaged_packed_row_is_an_error_naming_where_it_is(tmp_path: Path) -> None:
    bus = LocalBus(tmp_path)
    bus.ensure_topic(TopicSpec("t", 1))
    _append_together(bus, "t", [(None, b"x%d" % i) for i in range(10)])
    with sqlite3.connect(bus.path) as raw:
        raw.execute("UPDATE t1 SET value = X'00ff00ff' WHERE n > 1")
    consumer = bus.consumer(None, ["t"])
    with pytest.raises(BusError, match=r"t\[0\] offset 0: damaged message batch"):
        consumer.poll(10, timeout=1.0)
    consumer.close()
    bus.close()


def test_version_2_layout_is_migrated_and_appended_to(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "bus.sqlite3") as raw:
        raw.executescript(V2_LAYOUT)
    bus = LocalBus(tmp_path)
    _append_together(bus, "t", [(None, b"new%d" % i) for i in range(5)])
    assert [(m.offset, m.key, m.value) for m in read_all(bus, "t")] == [
        (0, b"k", b"old0"),
        (1, None, b"old1"),
        *[(2 + i, None, b"new%d" % i) for i in range(5)],
    ]
    assert _rows(bus, "t") == [(0, 1), (1, 1), (2, 5)]
    consumer = bus.consumer("g", ["t"])
    assert [m.value for m in drain(consumer, 6)] == [b"old1"] + [b"new%d" % i for i in range(5)]
    consumer.close()
    bus.close()
    with sqlite3.connect(tmp_path / "bus.sqlite3") as raw:
        assert raw.execute("PRAGMA user_version").fetchone() == (3,)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=3 * MAX_BATCH_BYTES), max_size=120))
def test_groups_keep_order_and_bounds(sizes: list[int]) -> None:
    entries = [("t", None, b"x" * size) for size in sizes]
    runs = list(groups(entries))
    assert [e for run in runs for e in run] == entries
    for run in runs:
        assert 1 <= len(run) <= MAX_BATCH_MESSAGES
        assert len(run) == 1 or sum(len(e[2]) for e in run) <= MAX_BATCH_BYTES
