"""Contract 8: large and empty payloads round-trip unchanged, through a producer and a
transaction."""

from __future__ import annotations

import os
from collections.abc import Callable

from tests.helpers.bus import drain, read_all
from tests.helpers.contract import BusFactory

from logfactory.bus.base import TopicSpec

BIG = 10 * 1024 * 1024


def _order(kv: tuple[bytes | None, bytes]) -> tuple[bool, bytes, int]:
    return kv[0] is None, kv[0] or b"", len(kv[1])


def test_large_and_empty_messages_round_trip(
    bus_factory: BusFactory, names: Callable[[str], str]
) -> None:
    bus = bus_factory()
    topic, out, group = names("payloads"), names("payloads-out"), names("g")
    bus.ensure_topic(TopicSpec(topic, 2))
    bus.ensure_topic(TopicSpec(out, 1))
    big = os.urandom(BIG)
    producer = bus.producer()
    producer.produce(topic, big, key=b"big")
    producer.produce(topic, b"", key=None)
    producer.produce(topic, b"", key=b"")
    producer.produce(topic, b"\x00\xff" * 3, key=b"\x00")
    producer.flush()
    producer.close()

    sent = [(b"big", big), (None, b""), (b"", b""), (b"\x00", b"\x00\xff" * 3)]
    got = read_all(bus, topic)
    assert sorted(((m.key, m.value) for m in got), key=_order) == sorted(sent, key=_order)
    assert all(type(m.value) is bytes for m in got)

    consumer = bus.consumer(group, [topic])
    messages = drain(consumer, 4)
    with bus.transaction(consumer) as tx:
        for m in messages:
            tx.produce(out, m.value, m.key)
        tx.commit_offsets({(m.topic, m.partition): m.offset + 1 for m in messages})
    consumer.close()
    copied = [(m.key, m.value) for m in read_all(bus, out)]
    assert sorted(copied, key=_order) == sorted(sent, key=_order)
