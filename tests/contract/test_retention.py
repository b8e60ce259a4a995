"""Contract 6: retention by age and by size, compaction, and what they may never do: move
offsets backwards or strand a group whose committed offset was deleted."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from tests.helpers.bus import drain, key_for, read_all
from tests.helpers.contract import BusFactory
from tests.helpers.waiting import wait_for

from logfactory.bus.base import Bus, TopicSpec


def _produce(bus: Bus, topic: str, items: Sequence[tuple[bytes | None, bytes]]) -> None:
    producer = bus.producer()
    for key, value in items:
        producer.produce(topic, value, key)
    producer.flush()
    producer.close()


def _maintained(bus: Bus, topic: str, check: Callable[[dict[int, tuple[int, int]]], bool]) -> bool:
    """Run maintenance, then test the watermarks (retention may lag behind on a real broker)."""
    bus.maintain()
    return check(bus.watermarks(topic))


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_retention_by_age_drops_only_old_messages(
    bus_factory: BusFactory, names: Callable[[str], str]
) -> None:
    """Both buses age a message by its timestamp against the wall clock at maintenance. So
    each maintenance is bracketed by the wall clock, and whatever the machine's speed, every
    message younger than the retention at the end of the bracket must still be there (and
    what is gone is a prefix). A batch that a slow machine let age before it could be checked
    is no reason to skip the check: a fresh batch is produced until one is checked young."""
    bus = bus_factory()
    topic, age = names("aged"), 1000
    bus.ensure_topic(TopicSpec(topic, 1, retention_ms=age))
    stamps: dict[int, int] = {}  # offset -> timestamp of every message produced
    values: dict[int, bytes] = {}

    def produce(items: list[bytes]) -> list[int]:
        _low, high = bus.watermarks(topic)[0]
        _produce(bus, topic, [(None, v) for v in items])
        fresh = [m for m in read_all(bus, topic) if m.offset >= high]
        assert [m.value for m in fresh] == items  # just written: too young to be gone
        stamps.update((m.offset, m.timestamp_ms) for m in fresh)
        values.update((m.offset, m.value) for m in fresh)
        return [m.offset for m in fresh]

    def observe() -> tuple[int, int]:
        """Maintain; check that only old messages are gone; the low mark and the bracket's end."""
        bus.maintain()
        low, high = bus.watermarks(topic)[0]
        remaining = read_all(bus, topic)
        end = _now_ms()
        young = sorted(o for o, ts in stamps.items() if ts >= end - age)
        assert not young or young[0] >= low, f"{young} younger than {age} ms, low mark {low}"
        assert [(m.offset, m.value) for m in remaining] == [
            (o, values[o]) for o in sorted(values) if low <= o < high
        ]
        return low, end

    old = produce([b"old%d" % i for i in range(5)])
    assert old == [0, 1, 2, 3, 4]
    observe()
    wait_for(lambda: observe()[0] == 5, timeout=15, what="old messages to age out")

    deadline = time.monotonic() + 60
    while True:
        new = produce([b"new%d" % i for i in range(3)])
        low, end = observe()
        if min(stamps[o] for o in new) >= end - age:  # young at the check: it had to be kept
            assert low <= new[0]
            break
        assert time.monotonic() < deadline, "no batch could be checked while still young"
    assert old[-1] < low


def test_retention_by_size_keeps_the_newest_bytes_per_partition(
    bus_factory: BusFactory, names: Callable[[str], str]
) -> None:
    bus = bus_factory()
    topic = names("sized")
    bus.ensure_topic(TopicSpec(topic, 2, retention_bytes=1000))
    items = [(key_for(p, 2), b"%d:%03d" % (p, i) + b"." * 94) for i in range(30) for p in range(2)]
    _produce(bus, topic, items)
    assert bus.watermarks(topic) == {0: (0, 30), 1: (0, 30)}
    wait_for(
        lambda: _maintained(bus, topic, lambda w: w == {0: (20, 30), 1: (20, 30)}),
        timeout=15,
        what="each partition to shrink to its newest 1000 bytes",
    )
    kept = read_all(bus, topic)
    for p in range(2):
        assert [m.value[:5] for m in kept if m.partition == p] == [
            b"%d:%03d" % (p, i) for i in range(20, 30)
        ]


def test_compaction_keeps_the_newest_message_per_key(
    bus_factory: BusFactory, names: Callable[[str], str]
) -> None:
    bus = bus_factory()
    topic = names("compacted")
    bus.ensure_topic(TopicSpec(topic, 2, compact=True))
    keys = [b"k%d" % i for i in range(10)]
    _produce(bus, topic, [(k, k + b"=%d" % r) for r in range(5) for k in keys])
    before = read_all(bus, topic)
    newest = {m.key: (m.partition, m.offset, m.value) for m in before}  # last one wins
    marks = bus.watermarks(topic)
    wait_for(
        lambda: _maintained(bus, topic, lambda _w: len(read_all(bus, topic)) == 10),
        timeout=15,
        what="compaction to one message per key",
    )
    after = read_all(bus, topic)
    assert {m.key: (m.partition, m.offset, m.value) for m in after} == newest
    assert all(m.value.endswith(b"=4") for m in after)
    assert {p: hi for p, (_lo, hi) in bus.watermarks(topic).items()} == {
        p: hi for p, (_lo, hi) in marks.items()
    }

    _produce(bus, topic, [(b"k0", b"k0=5")])
    wait_for(
        lambda: _maintained(bus, topic, lambda _w: len(read_all(bus, topic)) == 10),
        timeout=15,
        what="the second compaction",
    )
    assert sorted(m.value for m in read_all(bus, topic)) == sorted(
        [b"k0=5"] + [k + b"=4" for k in keys[1:]]
    )


def test_offsets_never_go_back_and_groups_resume_at_the_low_watermark(
    bus_factory: BusFactory, names: Callable[[str], str]
) -> None:
    bus = bus_factory()
    topic, group = names("trimmed"), names("g")
    bus.ensure_topic(TopicSpec(topic, 1, retention_bytes=500))
    _produce(bus, topic, [(None, b"%03d" % i + b"." * 97) for i in range(3)])
    consumer = bus.consumer(group, [topic])
    drain(consumer, 3)
    consumer.commit()
    consumer.close()
    _produce(bus, topic, [(None, b"%03d" % i + b"." * 97) for i in range(3, 20)])
    wait_for(
        lambda: _maintained(bus, topic, lambda w: w == {0: (15, 20)}),
        timeout=15,
        what="size retention past the group's committed offset",
    )
    assert bus.committed(group, topic) == {0: 3}
    resumed = bus_factory.another(bus).consumer(group, [topic])
    assert [m.offset for m in drain(resumed, 5)] == [15, 16, 17, 18, 19]
    resumed.close()

    gone = names("emptied")
    bus.ensure_topic(TopicSpec(gone, 1, retention_ms=1))
    _produce(bus, gone, [(None, b"x")] * 4)
    wait_for(
        lambda: _maintained(bus, gone, lambda w: w == {0: (4, 4)}),
        timeout=15,
        what="every message to age out",
    )
    _produce(bus, gone, [(None, b"after")])
    assert [(m.offset, m.value) for m in read_all(bus, gone)] == [(4, b"after")]
    assert bus_factory.another(bus).watermarks(gone)[0][1] == 5


def test_watermarks_follow_appends(bus_factory: BusFactory, names: Callable[[str], str]) -> None:
    bus = bus_factory()
    topic = names("marks")
    bus.ensure_topic(TopicSpec(topic, 3))
    assert bus.watermarks(topic) == {0: (0, 0), 1: (0, 0), 2: (0, 0)}
    _produce(bus, topic, [(key_for(p, 3), b"v") for p in (0, 2, 2, 2, 0)])
    assert bus.watermarks(topic) == {0: (0, 2), 1: (0, 0), 2: (0, 3)}
    assert bus.topics()[topic] == 3
