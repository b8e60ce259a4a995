"""Contract 4: a transaction writes its outputs and input offsets together or not at all, and
a consumer that lost its partitions cannot commit through one."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tests.helpers.bus import drain, read_all
from tests.helpers.contract import BusFactory
from tests.helpers.waiting import wait_for

from logfactory.bus.base import Bus, FencedError, Message, TopicSpec


def _setup(bus: Bus, names: Callable[[str], str]) -> tuple[str, str, str]:
    src, dst, group = names("in"), names("out"), names("g")
    bus.ensure_topic(TopicSpec(src, 2))
    bus.ensure_topic(TopicSpec(dst, 2))
    producer = bus.producer()
    for i in range(10):
        producer.produce(src, b"%d" % i)
    producer.flush()
    producer.close()
    return src, dst, group


def _ends(bus: Bus, topic: str) -> dict[int, int]:
    return {p: hi for p, (_lo, hi) in bus.watermarks(topic).items()}


def _read_to_end(bus: Bus, topic: str) -> dict[int, int]:
    """The ends of the partitions that hold messages: what a group that read everything has
    committed (unkeyed messages may all land in one partition, and an empty partition has
    nothing to commit)."""
    return {p: hi for p, hi in _ends(bus, topic).items() if hi > 0}


def _offsets(messages: list[Message]) -> dict[tuple[str, int], int]:
    return {(m.topic, m.partition): m.offset + 1 for m in messages}


def test_transaction_writes_outputs_and_offsets_together(
    bus_factory: BusFactory, names: Callable[[str], str]
) -> None:
    bus = bus_factory()
    src, dst, group = _setup(bus, names)
    consumer = bus.consumer(group, [src])
    messages = drain(consumer, 10)
    with bus.transaction(consumer) as tx:
        for m in messages:
            tx.produce(dst, b"out" + m.value)
        tx.commit_offsets(_offsets(messages))
    consumer.close()
    assert sorted(m.value for m in read_all(bus, dst)) == sorted(b"out%d" % i for i in range(10))
    assert bus.committed(group, src) == _read_to_end(bus, src)


def test_exception_in_transaction_writes_neither_outputs_nor_offsets(
    bus_factory: BusFactory, names: Callable[[str], str]
) -> None:
    bus = bus_factory()
    src, dst, group = _setup(bus, names)
    consumer = bus.consumer(group, [src])
    messages = drain(consumer, 10)

    def fail_inside_the_transaction() -> None:
        with bus.transaction(consumer) as tx:
            for m in messages:
                tx.produce(dst, b"out" + m.value)
            tx.commit_offsets(_offsets(messages))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_inside_the_transaction()
    assert _ends(bus, dst) == {0: 0, 1: 0}
    assert bus.committed(group, src) == {}
    consumer.close()
    again = bus.consumer(group, [src])
    assert sorted(m.value for m in drain(again, 10)) == sorted(b"%d" % i for i in range(10))
    again.close()


def test_fenced_consumer_cannot_commit_and_writes_nothing(
    bus_factory: BusFactory, names: Callable[[str], str]
) -> None:
    bus = bus_factory(session_timeout_ms=500)
    src, dst, group = _setup(bus, names)
    stale = bus.consumer(group, [src])
    stale_batch = drain(stale, 10)
    assert len(stale.assignment()) == 2

    # ``stale`` stops polling; past the session timeout the other member takes everything.
    other = bus_factory.another(bus).consumer(group, [src])
    redone: list[Message] = []

    def took_over() -> bool:
        redone.extend(other.poll(100, timeout=0.05))
        return len(other.assignment()) == 2

    wait_for(took_over, timeout=15, what="the live member to take every partition")

    def commit_the_stale_batch() -> None:
        with bus.transaction(stale) as tx:
            for m in stale_batch:
                tx.produce(dst, b"stale" + m.value)
            tx.commit_offsets(_offsets(stale_batch))

    with pytest.raises(FencedError):
        commit_the_stale_batch()
    with pytest.raises(FencedError):
        stale.commit(_offsets(stale_batch))
    assert _ends(bus, dst) == {0: 0, 1: 0}
    assert bus.committed(group, src) == {}

    redone += drain(other, 10 - len(redone))  # nothing was committed: it all comes again
    assert sorted(m.value for m in redone) == sorted(b"%d" % i for i in range(10))
    with bus.transaction(other) as tx:
        tx.produce(dst, b"done")
        tx.commit_offsets(_offsets(redone))
    assert bus.committed(group, src) == _read_to_end(bus, src)
    assert [m.value for m in read_all(bus, dst)] == [b"done"]
    other.close()
    stale.close()
