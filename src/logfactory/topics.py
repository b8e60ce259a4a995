"""The bus topics the node uses, and how each is created.

The fixed topics' names live in :mod:`logfactory.topic_names` (which the bus itself may import)
and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterable

from logfactory.bus.base import Bus, TopicSpec
from logfactory.config import Config
from logfactory.event import BUILTIN_TYPES, topic_for_type
from logfactory.topic_names import DEADLETTER, PARSED, PATTERNS, RAW, STATE

__all__ = [
    "DEADLETTER",
    "PARSED",
    "PATTERNS",
    "RAW",
    "STATE",
    "ensure_topics",
    "event_types",
]


def event_types(config: Config) -> list[str]:
    """Built-in types first, then the site's own, without repeats."""
    out = list(BUILTIN_TYPES)
    out += [t.name for t in config.event_types if t.name not in out]
    return out


def _specs(config: Config) -> Iterable[TopicSpec]:
    retention = config.bus.retention
    age_ms = int(retention.max_age * 1000) if retention.max_age else None
    limit = retention.max_bytes_per_partition
    size = int(limit) if limit is not None else None
    n = config.bus.partitions
    yield TopicSpec(RAW, n, retention_ms=age_ms, retention_bytes=size)
    yield TopicSpec(PARSED, n, retention_ms=age_ms, retention_bytes=size)
    yield TopicSpec(DEADLETTER, 1, retention_ms=age_ms, retention_bytes=size)
    for name in event_types(config):
        yield TopicSpec(topic_for_type(name), n, retention_ms=age_ms, retention_bytes=size)
    # the library and worker state are kept whole: newest value per key, never aged out
    yield TopicSpec(PATTERNS, 1, compact=True)
    yield TopicSpec(STATE, 1, compact=True)


def ensure_topics(bus: Bus, config: Config) -> None:
    for spec in _specs(config):
        bus.ensure_topic(spec)
