"""Contract 2: no loss and no duplicates across consumer restarts, and exactly once from input
to output when a consume-transform-produce process is SIGKILLed mid-stream."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from tests.helpers.bus import read_all
from tests.helpers.contract import BusFactory, Child
from tests.helpers.waiting import wait_for

from logfactory.bus.base import Bus, TopicSpec

N = 20_000


def _produce(bus: Bus, topic: str, start: int, stop: int) -> None:
    producer = bus.producer()
    for i in range(start, stop):
        producer.produce(topic, b"m%d" % i, key=b"k%d" % (i % 64))
    producer.flush()
    producer.close()


def test_group_sees_each_message_once_across_restarts(
    bus_factory: BusFactory, names: Callable[[str], str]
) -> None:
    bus = bus_factory()
    topic, group = names("restarts"), names("g")
    bus.ensure_topic(TopicSpec(topic, 4))
    _produce(bus, topic, 0, N // 2)
    seen: Counter[bytes] = Counter()
    restarts = 0
    handle = bus
    consumer = handle.consumer(group, [topic])
    while sum(seen.values()) < N:
        batch = consumer.poll(700, timeout=5.0)
        assert batch, f"stalled after {sum(seen.values())} messages"
        seen.update(m.value for m in batch)
        consumer.commit()
        if sum(seen.values()) >= 3000 * (restarts + 1):
            consumer.close()
            restarts += 1
            if restarts == 2:
                _produce(bus_factory.another(bus), topic, N // 2, N)
            handle = bus_factory.another(bus) if restarts % 2 else bus
            consumer = handle.consumer(group, [topic])
    consumer.close()
    assert restarts >= 5
    assert sum(seen.values()) == N
    assert set(seen) == {b"m%d" % i for i in range(N)}
    assert max(seen.values()) == 1
    assert bus.committed(group, topic) == {p: hi for p, (_lo, hi) in bus.watermarks(topic).items()}


def _outputs_match_commits(bus: Bus, src: str, dst: str, group: str) -> int:
    """Outputs so far are exactly one per committed input (none for uncommitted ones).

    A transaction the killed process had already committed may still be completing on the
    broker (Kafka writes its commit markers a moment after the commit returned), so the two
    reads are repeated until they describe the same moment; every read must be duplicate-free.
    """
    found: list[int] = []

    def matches() -> bool:
        outputs = read_all(bus, dst)
        per_input = Counter(tuple(m.value.split(b":")[1:3]) for m in outputs)
        assert max(per_input.values(), default=1) == 1, "an input produced two outputs"
        committed = bus.committed(group, src)
        expected = {(b"%d" % p, b"%d" % o) for p, n in committed.items() for o in range(n)}
        found[:] = [len(outputs)]
        return set(per_input) == expected

    wait_for(matches, timeout=15, what="outputs to match the committed inputs")
    return found[0]


def _committed_count(bus: Bus, src: str, group: str) -> int:
    """Inputs committed so far: the number of outputs (offsets of a transactional output
    topic also count Kafka's commit markers, so its watermarks would overstate it)."""
    return sum(bus.committed(group, src).values())


def test_transform_killed_mid_stream_writes_exactly_one_output_per_input(
    bus_factory: BusFactory, names: Callable[[str], str], spawn: Callable[..., Child]
) -> None:
    bus = bus_factory()
    src, dst, group = names("in"), names("out"), names("g")
    bus.ensure_topic(TopicSpec(src, 4))
    bus.ensure_topic(TopicSpec(dst, 4))
    _produce(bus, src, 0, N)
    spec = bus_factory.child_spec(bus)

    def written() -> int:
        return _committed_count(bus, src, group)

    for stop_at in (3000, 9000):
        child = spawn("transform", spec, src, dst, group, "20", "forever")
        child.expect("ready")
        target = stop_at

        def enough(target: int = target) -> bool:
            return written() >= target

        wait_for(enough, timeout=30, what=f"{stop_at} outputs")
        child.kill()
        done = _outputs_match_commits(bus, src, dst, group)
        assert stop_at <= done < N, "the kill did not land mid-stream"

    child = spawn("transform", spec, src, dst, group, "20", "done")
    child.expect("ready")
    child.expect("finished", timeout=60)
    child.finish()
    assert _outputs_match_commits(bus, src, dst, group) == N
    values = sorted(m.value.split(b":", 3)[3] for m in read_all(bus, dst))
    assert values == sorted(b"m%d" % i for i in range(N))
