"""Contract 3: what a commit means for the next member of a group, where ``start`` applies,
group-less reading, explicit offsets, positions and seeking."""

from __future__ import annotations

from collections.abc import Callable

from tests.helpers.bus import drain, key_for, read_all
from tests.helpers.contract import BusFactory
from tests.helpers.waiting import wait_for

from logfactory.bus.base import Bus, Consumer, TopicSpec


def _produce(bus: Bus, topic: str, values: list[bytes], key: bytes | None = None) -> None:
    producer = bus.producer()
    for value in values:
        producer.produce(topic, value, key)
    producer.flush()
    producer.close()


def _joined(consumer: Consumer) -> None:
    """Wait until the consumer owns its partitions (it must not be handed any message yet)."""

    def ready() -> bool:
        assert consumer.poll(10, timeout=0.05) == []
        return bool(consumer.assignment())

    wait_for(ready, timeout=15, what="the consumer's first assignment")


def test_uncommitted_messages_go_to_the_next_member_committed_ones_do_not(
    bus_factory: BusFactory, names: Callable[[str], str]
) -> None:
    bus = bus_factory()
    topic, group = names("commits"), names("g")
    bus.ensure_topic(TopicSpec(topic, 1))
    _produce(bus, topic, [b"%d" % i for i in range(10)])

    first = bus.consumer(group, [topic])
    assert [m.offset for m in drain(first, 4, batch=4)] == [0, 1, 2, 3]
    first.commit()
    assert [m.offset for m in drain(first, 3, batch=3)] == [4, 5, 6]  # read, never committed
    first.close()
    assert bus.committed(group, topic) == {0: 4}

    second = bus_factory.another(bus).consumer(group, [topic])
    assert [m.offset for m in drain(second, 6)] == [4, 5, 6, 7, 8, 9]
    second.commit()
    second.close()
    assert bus.committed(group, topic) == {0: 10}

    third = bus.consumer(group, [topic])
    assert third.poll(10, timeout=0.5) == []
    assert third.position() == {(topic, 0): 10}
    third.close()


def test_start_applies_only_to_a_group_without_committed_offsets(
    bus_factory: BusFactory, names: Callable[[str], str]
) -> None:
    bus = bus_factory()
    topic, late, early = names("start"), names("late"), names("early")
    bus.ensure_topic(TopicSpec(topic, 1))
    _produce(bus, topic, [b"old%d" % i for i in range(5)])

    consumer = bus.consumer(late, [topic], "latest")
    _joined(consumer)
    _produce(bus, topic, [b"new%d" % i for i in range(3)])
    assert [m.offset for m in drain(consumer, 3)] == [5, 6, 7]
    consumer.commit()
    consumer.close()

    _produce(bus, topic, [b"newer8", b"newer9"])
    again = bus.consumer(late, [topic], "latest")  # committed offset wins over "latest"
    assert [m.value for m in drain(again, 2)] == [b"newer8", b"newer9"]
    again.close()

    fresh = bus.consumer(early, [topic], "earliest")
    assert [m.offset for m in drain(fresh, 10)] == list(range(10))
    fresh.commit({(topic, 0): 6})
    fresh.close()
    resumed = bus.consumer(early, [topic], "latest")  # ...and over "earliest" likewise
    assert [m.offset for m in drain(resumed, 4)] == [6, 7, 8, 9]
    resumed.close()


def test_groupless_consumers_read_everything_and_commit_nothing(
    bus_factory: BusFactory, names: Callable[[str], str]
) -> None:
    bus = bus_factory()
    topic = names("nogroup")
    bus.ensure_topic(TopicSpec(topic, 3))
    _produce(bus, topic, [b"%d" % i for i in range(30)])
    groups_before = set(bus.groups())

    a = bus.consumer(None, [topic])
    b = bus_factory.another(bus).consumer(None, [topic])
    assert a.group is None
    assert sorted(a.assignment()) == [(topic, 0), (topic, 1), (topic, 2)]
    for consumer in (a, b):
        assert sorted(int(m.value) for m in drain(consumer, 30)) == list(range(30))
        consumer.commit()
        assert consumer.poll(10, timeout=0.2) == []
    a.close()
    b.close()
    assert set(bus.groups()) == groups_before
    late = bus.consumer(None, [topic], "latest")
    assert late.poll(10, timeout=0.2) == []
    _produce(bus, topic, [b"30"])
    assert [m.value for m in drain(late, 1)] == [b"30"]
    late.close()


def test_explicit_offsets_are_where_the_group_resumes(
    bus_factory: BusFactory, names: Callable[[str], str]
) -> None:
    bus = bus_factory()
    topic, group = names("explicit"), names("g")
    bus.ensure_topic(TopicSpec(topic, 2))
    _produce(bus, topic, [b"a%d" % i for i in range(8)], key=key_for(0, 2))
    _produce(bus, topic, [b"b%d" % i for i in range(8)], key=key_for(1, 2))
    parts = {m.value[:1]: m.partition for m in read_all(bus, topic)}
    assert parts == {b"a": 0, b"b": 1}

    consumer = bus.consumer(group, [topic])
    drain(consumer, 16)
    consumer.commit({(topic, parts[b"a"]): 3, (topic, parts[b"b"]): 7})
    consumer.close()
    assert bus.committed(group, topic) == {parts[b"a"]: 3, parts[b"b"]: 7}

    again = bus.consumer(group, [topic])
    got = sorted(m.value for m in drain(again, 6))
    assert got == sorted([b"a3", b"a4", b"a5", b"a6", b"a7", b"b7"])
    assert again.poll(10, timeout=0.2) == []
    again.close()


def test_position_and_seek(bus_factory: BusFactory, names: Callable[[str], str]) -> None:
    bus = bus_factory()
    topic = names("seek")
    bus.ensure_topic(TopicSpec(topic, 1))
    _produce(bus, topic, [b"%d" % i for i in range(5)])
    consumer = bus.consumer(None, [topic])
    assert consumer.position() == {(topic, 0): 0}
    drain(consumer, 5)
    assert consumer.position() == {(topic, 0): 5}
    consumer.seek((topic, 0), 2)
    assert [m.offset for m in drain(consumer, 3)] == [2, 3, 4]
    consumer.close()
