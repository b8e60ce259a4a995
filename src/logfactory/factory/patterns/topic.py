"""The pattern library's home on the bus: the compacted ``patterns.library`` topic.

Shared by everything that reads or reviews the library outside a factory worker (the CLI, the
HTTP API): they read the whole topic into a :class:`PatternLibrary` and publish their changes
back, keyed by pattern id, where the workers pick them up at their next sync.
"""

from __future__ import annotations

import time

from logfactory.bus.base import Bus, BusError
from logfactory.factory.patterns.library import PatternLibrary
from logfactory.topics import PATTERNS

__all__ = ["load_library", "save_changes"]


def load_library(bus: Bus, timeout: float = 60.0) -> PatternLibrary:
    """The library as the workers know it: every entry on the compacted topic, newest last.

    Raises :class:`BusError` if the topic cannot be read to its end within ``timeout`` (on
    Kafka a transaction left open by a crashed worker holds readers back until it is aborted).
    """
    library = PatternLibrary()
    ends = {(PATTERNS, p): hi for p, (_lo, hi) in bus.watermarks(PATTERNS).items()}
    consumer = bus.consumer(None, [PATTERNS], "earliest")
    deadline = time.monotonic() + timeout
    try:
        while any(consumer.position().get(tp, 0) < hi for tp, hi in ends.items()):
            if time.monotonic() > deadline:
                raise BusError(f"could not read {PATTERNS} to its end within {timeout:g} s")
            for msg in consumer.poll(5000, timeout=0.5):
                if msg.value:
                    library.apply(msg.value)
    finally:
        consumer.close()
    library.drain_changes()
    return library


def save_changes(bus: Bus, library: PatternLibrary) -> int:
    """Publish the library's changes to the topic the workers learn from; how many."""
    changes = library.drain_changes_keyed(include_counts=True)
    producer = bus.producer()
    try:
        for key, value in changes:
            producer.produce(PATTERNS, value, key.encode())
        producer.flush()
    finally:
        producer.close()
    return len(changes)
