"""Contract 5: members of a group split the partitions, and the survivors take over the
partitions of a member that leaves or dies, at the committed offsets."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable

from tests.helpers.bus import drain, key_for
from tests.helpers.contract import BusFactory, Child
from tests.helpers.waiting import wait_for

from logfactory.bus.base import Bus, Consumer, Message, TopicSpec

PARTS = 4


def _produce(bus: Bus, topic: str, per_partition: int, tag: str) -> None:
    producer = bus.producer()
    for i in range(per_partition):
        for p in range(PARTS):
            producer.produce(topic, f"{tag}:{p}:{i}".encode(), key_for(p, PARTS))
    producer.flush()
    producer.close()


def _poll_commit(consumer: Consumer, into: list[Message]) -> int:
    """One poll-process-commit step; returns how many messages it read."""
    batch = consumer.poll(100, timeout=0.05)
    into += batch
    consumer.commit()
    return len(batch)


STALL_S = 30.0
"""How long reading may make no progress while messages remain before the test calls it a stall
(generous: a loaded 2-core machine and a rebalancing Kafka group pause for seconds)."""


def _read_until(step: Callable[[], int], total: Callable[[], int], want: int, what: str) -> None:
    """Run ``step`` (one poll-process-commit round) until ``total()`` reaches ``want``; fail
    when no new message arrived for :data:`STALL_S` while some remain: a stall, not a wait."""
    seen, last_progress = total(), time.monotonic()
    while (now := total()) < want:
        if now > seen:
            seen, last_progress = now, time.monotonic()
        elif time.monotonic() - last_progress > STALL_S:
            raise AssertionError(f"{what} stalled at {now} of {want} messages for {STALL_S}s")
        step()


def test_members_split_partitions_and_hand_over_on_close(
    bus_factory: BusFactory, names: Callable[[str], str]
) -> None:
    bus = bus_factory(session_timeout_ms=60_000)  # hand-over must not wait for a timeout
    topic, group = names("split"), names("g")
    bus.ensure_topic(TopicSpec(topic, PARTS))
    first = bus.consumer(group, [topic])
    second = bus_factory.another(bus).consumer(group, [topic])
    reads: dict[str, list[Message]] = {"first": [], "second": []}

    def balanced() -> bool:
        _poll_commit(first, reads["first"])
        _poll_commit(second, reads["second"])
        a, b = set(first.assignment()), set(second.assignment())
        return bool(a) and bool(b) and not a & b and len(a | b) == PARTS

    wait_for(balanced, timeout=15, what="two members to split the partitions")
    mine = {"first": set(first.assignment()), "second": set(second.assignment())}

    _produce(bus, topic, 250, "one")
    _read_until(
        lambda: _poll_commit(first, reads["first"]) + _poll_commit(second, reads["second"]),
        lambda: len(reads["first"]) + len(reads["second"]),
        PARTS * 250,
        "the two members",
    )
    for who, messages in reads.items():
        assert messages, f"{who} read nothing"
        assert {(m.topic, m.partition) for m in messages} <= mine[who]
    everything = Counter(m.value for messages in reads.values() for m in messages)
    assert len(everything) == PARTS * 250
    assert max(everything.values()) == 1

    # ``second`` reads a batch but commits only half of it per partition, then leaves.
    _produce(bus, topic, 100, "two")
    batch = drain(second, 40, batch=40)
    by_tp: dict[tuple[str, int], list[int]] = {}
    for m in batch:
        by_tp.setdefault((m.topic, m.partition), []).append(m.offset)
    committed = {tp: offsets[len(offsets) // 2] for tp, offsets in by_tp.items()}
    second.commit(committed)
    second.close()
    done_by_second = {m.value for m in batch if m.offset < committed[(m.topic, m.partition)]}
    wait_for(
        lambda: _poll_commit(first, reads["first"]) >= 0 and len(first.assignment()) == PARTS,
        timeout=10,
        what="the remaining member to take every partition",
    )

    def taken() -> list[Message]:
        return [m for m in reads["first"] if m.value.startswith(b"two")]

    wait_for(
        lambda: (
            _poll_commit(first, reads["first"]) >= 0 and len(taken()) >= 400 - len(done_by_second)
        ),
        timeout=15,
        what="the remaining member to read the rest",
    )
    assert first.poll(10, timeout=0.2) == []
    for tp, offset in committed.items():
        resumed = [m.offset for m in taken() if (m.topic, m.partition) == tp]
        assert resumed[0] == offset, f"{tp} resumed at {resumed[0]}, committed {offset}"
    got = Counter(m.value for m in taken()) + Counter(done_by_second)
    assert set(got) == {f"two:{p}:{i}".encode() for p in range(PARTS) for i in range(100)}
    assert max(got.values()) == 1
    first.close()


def test_survivor_takes_over_from_a_killed_member_at_its_commits(
    bus_factory: BusFactory, names: Callable[[str], str], spawn: Callable[..., Child]
) -> None:
    bus = bus_factory(session_timeout_ms=60_000)  # the dead pid, not a timeout, must tell
    topic, group = names("killed"), names("g")
    bus.ensure_topic(TopicSpec(topic, PARTS))
    _produce(bus, topic, 500, "m")
    child = spawn("member", bus_factory.child_spec(bus), topic, group)
    child.expect("ready")
    survivor = bus.consumer(group, [topic])
    mine: list[Message] = []
    theirs: set[tuple[int, int]] = set()

    def step_child() -> set[int]:
        child.send("step")
        report = json.loads(child.line())
        theirs.update((p, o) for p, o in report["read"])
        return set(report["assignment"])

    def balanced() -> bool:
        child_parts = step_child()
        _poll_commit(survivor, mine)
        own = {p for _t, p in survivor.assignment()}
        return (
            bool(own)
            and bool(child_parts)
            and not own & child_parts
            and len(own | child_parts) == PARTS
        )

    wait_for(balanced, timeout=15, what="the child and the survivor to split the partitions")
    for _ in range(3):
        step_child()
    assert theirs
    child.kill()
    committed = bus.committed(group, topic)
    wait_for(
        lambda: _poll_commit(survivor, mine) >= 0 and len(survivor.assignment()) == PARTS,
        timeout=10,
        what="the survivor to take the dead member's partitions",
    )
    _read_until(
        lambda: _poll_commit(survivor, mine),
        lambda: len(mine) + len(theirs),
        PARTS * 500,
        "the survivor",
    )
    ours = {(m.partition, m.offset) for m in mine}
    assert not ours & theirs, "a message committed by the dead member was read again"
    assert ours | theirs == {(p, o) for p in range(PARTS) for o in range(500)}
    assert bus.committed(group, topic) == {p: 500 for p in range(PARTS)}
    assert all(committed.get(p, 0) <= 500 for p in range(PARTS))
    survivor.close()
