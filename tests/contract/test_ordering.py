"""Contract 1: per-partition order, and keys that land in the same partition everywhere."""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Callable

from tests.helpers.bus import read_all
from tests.helpers.contract import BusFactory, Child

from logfactory.bus.base import TopicSpec, partition_for_key


def test_keyed_messages_keep_per_key_order_across_producers(
    bus_factory: BusFactory, names: Callable[[str], str]
) -> None:
    bus = bus_factory()
    topic = names("ordered")
    assert bus.ensure_topic(TopicSpec(topic, 4)) == 4
    producers = [bus_factory.another(bus).producer() for _ in range(3)]
    seq: Counter[tuple[int, str]] = Counter()
    for i in range(6000):
        n, key = i % 3, f"k{i % 16}"
        producers[n].produce(topic, f"{n}:{key}:{seq[n, key]}".encode(), key.encode())
        seq[n, key] += 1
    for producer in producers:
        producer.flush()
        producer.close()

    messages = read_all(bus, topic)
    assert len(messages) == 6000
    offsets: dict[int, list[int]] = defaultdict(list)
    last: dict[tuple[str, str], int] = {}
    home: dict[str, int] = {}
    for m in messages:
        who, key, s = m.value.decode().split(":")
        assert m.key == key.encode()
        assert m.partition == partition_for_key(m.key, 4)
        assert home.setdefault(key, m.partition) == m.partition
        assert int(s) == last.get((who, key), -1) + 1, (
            f"{who}/{key}: {s} after {last.get((who, key))}"
        )
        last[who, key] = int(s)
        offsets[m.partition].append(m.offset)
    assert len(offsets) > 1  # the keys really did spread over partitions
    for p, seen in offsets.items():
        assert seen == list(range(len(seen))), f"partition {p} read out of order or with holes"


def test_partition_for_key_is_the_same_in_every_process(spawn: Callable[..., Child]) -> None:
    ours = [partition_for_key(f"key-{i}".encode(), 7) for i in range(200)]
    assert len(set(ours)) == 7
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        child = spawn("partitions", "{}", "200", "7", env=env)
        assert json.loads(child.line()) == ours
        child.finish()
    assert partition_for_key(None, 4, 5) == 1
