"""Contract 7: many processes producing into one topic at once lose nothing, duplicate
nothing, keep each producer's per-key order, and never see a "database is locked" error."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from tests.helpers.bus import read_all
from tests.helpers.contract import BusFactory, Child

from logfactory.bus.base import Message, partition_for_key

PROCESSES = 10
EACH = 5_000


def test_concurrent_producer_processes(
    bus_factory: BusFactory, names: Callable[[str], str], spawn: Callable[..., Child]
) -> None:
    bus = bus_factory()
    topic, group = names("crowd"), names("g")
    spec = bus_factory.child_spec(bus)
    children = [
        spawn("produce", spec, topic, "4", f"p{n}", str(EACH)) for n in range(PROCESSES)
    ]  # they create the topic themselves, all at once
    for child in children:
        child.expect("ready")
    assert bus.topics()[topic] == 4
    consumer = bus.consumer(group, [topic])  # reads while they write
    for child in children:
        child.send("go")
    live: list[Message] = []
    while len(live) < PROCESSES * EACH:
        batch = consumer.poll(2000, timeout=30)
        assert batch, f"stalled after {len(live)} messages"
        live += batch
        consumer.commit()
    for child in children:
        child.expect("done", timeout=60)
        err = child.finish()
        assert "locked" not in err, err
        assert "Traceback" not in err, err
    assert consumer.poll(10, timeout=0.2) == []
    consumer.close()

    stored = read_all(bus, topic)
    for messages in (live, stored):
        counts = Counter(m.value for m in messages)
        assert len(counts) == PROCESSES * EACH
        assert max(counts.values()) == 1
    last: dict[bytes, int] = {}
    for m in stored:
        assert m.key is not None
        assert m.partition == partition_for_key(m.key, 4)
        name, seq = m.value.split(b":")
        assert int(seq) > last.get(m.key, -1), f"{m.key!r} out of order"
        assert m.key.startswith(name + b"-")
        last[m.key] = int(seq)
