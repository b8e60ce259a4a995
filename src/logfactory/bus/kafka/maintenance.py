"""Retention and compaction on demand for the Kafka bus.

Why not leave it to the broker: Kafka deletes and compacts only closed segments, on its own
schedule (minutes by default), and measures size in segment bytes. The bus contract promises
that :meth:`maintain` applies the topic's rules *now*, by message age and by payload bytes, and
never changes the offsets of what remains. DeleteRecords (advance the log start offset) does
exactly that for a prefix of a partition:

* age: everything before the first message younger than ``retention.ms`` (ListOffsets by
  timestamp, no scan);
* size: the oldest messages until the remaining payload bytes fit ``retention.bytes`` (the
  bus scans new messages once and remembers (offset, size) of what is still stored);
* compaction: the prefix of messages that all have a newer message with the same key (Kafka's
  own cleaner takes care of superseded messages further in). Compacted topics are created
  ``compact,delete`` with unlimited retention precisely so that DeleteRecords is allowed.

Only topics whose retention or cleanup policy is set on the topic itself are considered;
broker-wide defaults are left to the broker. Topic settings are cached for ``_CONFIG_TTL``.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, cast

from confluent_kafka import Consumer as RdConsumer
from confluent_kafka import KafkaException
from confluent_kafka import TopicPartition as RdTopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    ConfigSource,
    OffsetSpec,
)

from logfactory.bus.base import BusError, TopicPartition
from logfactory.bus.kafka.config import consumer_config
from logfactory.bus.kafka.sites import ClientSite, MaintenanceSite

__all__ = ["Rules", "close_maintenance", "maintain"]

_CONFIG_TTL = 30.0
_TOPIC_SOURCE = ConfigSource.DYNAMIC_TOPIC_CONFIG.value
_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Rules:
    retention_ms: int | None
    retention_bytes: int | None
    compact: bool


@dataclass(slots=True)
class _Scan:
    """What the bus remembers of one partition: sizes and newest offset per key, from ``next``."""

    next: int = 0
    sizes: deque[tuple[int, int]] = field(default_factory=deque)
    stored: int = 0
    newest: dict[bytes, int] = field(default_factory=dict)


def _rules(admin: AdminClient, topics: list[str]) -> dict[str, Rules]:
    if not topics:
        return {}
    futures = admin.describe_configs(
        [ConfigResource("TOPIC", t) for t in topics], request_timeout=_TIMEOUT
    )
    out: dict[str, Rules] = {}
    for resource, future in futures.items():
        try:
            entries = future.result()
        except KafkaException:
            continue  # deleted meanwhile
        own = {
            name: e.value
            for name, e in entries.items()
            if int(getattr(e.source, "value", e.source)) == _TOPIC_SOURCE and e.value is not None
        }
        ms = int(own["retention.ms"]) if "retention.ms" in own else -1
        size = int(own["retention.bytes"]) if "retention.bytes" in own else -1
        compact = "compact" in own.get("cleanup.policy", "")
        deletable = "delete" in own.get("cleanup.policy", "delete")
        if deletable and (ms >= 0 or size >= 0 or compact):
            out[resource.name] = Rules(
                ms if ms >= 0 else None, size if size >= 0 else None, compact
            )
    return out


def _scanner(bus: ClientSite, cache: dict[Any, Any]) -> RdConsumer:
    """One group-less reader per bus, reused by every maintenance run."""
    reader = cache.get("scanner")
    if reader is None:
        gid = f"logfactory-maintain-{uuid.uuid4().hex}"
        reader = cache["scanner"] = RdConsumer(
            consumer_config(bus.settings, bus.client_id, gid, "earliest")
        )
    return reader


def _scan(
    bus: ClientSite,
    cache: dict[Any, Any],
    todo: dict[TopicPartition, tuple[_Scan, Rules, int, int]],
) -> None:
    """Read each partition's ``[max(state.next, low), high)`` once, all partitions together,
    remembering payload sizes and the newest offset per key."""
    for job in todo.values():
        state, low = job[0], job[2]
        if state.next < low:
            state.next = low
            while state.sizes and state.sizes[0][0] < low:
                state.stored -= state.sizes.popleft()[1]
    todo = {tp: job for tp, job in todo.items() if job[0].next < job[3]}
    if not todo:
        return
    reader = _scanner(bus, cache)
    reader.assign([RdTopicPartition(t, p, job[0].next) for (t, p), job in todo.items()])
    try:
        deadline = time.monotonic() + _TIMEOUT
        while todo:
            if time.monotonic() > deadline:
                raise BusError(f"maintain: reading {sorted(todo)} stalled")
            for m in reader.consume(1000, 0.2):
                if m.error() is not None:
                    continue
                found = todo.get((cast(str, m.topic()), cast(int, m.partition())))
                if found is None:
                    continue
                state, rules = found[0], found[1]
                offset = cast(int, m.offset())
                if offset < state.next:
                    continue
                value = m.value() or b""
                if rules.retention_bytes is not None:
                    state.sizes.append((offset, len(value)))
                    state.stored += len(value)
                key = m.key()
                if rules.compact and key is not None:
                    state.newest[key] = offset
                state.next = offset + 1
            for x in reader.position([RdTopicPartition(t, p) for t, p in todo]):
                job = todo[(x.topic, x.partition)]
                if x.offset is not None and x.offset >= 0:
                    job[0].next = max(job[0].next, x.offset)  # past transaction markers
            todo = {tp: job for tp, job in todo.items() if job[0].next < job[3]}
    finally:
        reader.unassign()


def _cut(rules: Rules, state: _Scan, low: int, high: int, young: int | None) -> int:
    """The new log start offset of one partition under ``rules``."""
    cut = low
    if young is not None:
        cut = max(cut, high if young < 0 else young)
    if rules.retention_bytes is not None:
        sizes = state.sizes
        while sizes and (sizes[0][0] < cut or state.stored > rules.retention_bytes):
            offset, size = sizes.popleft()
            state.stored -= size
            cut = max(cut, offset + 1)
    if rules.compact and state.newest:
        cut = max(cut, min(state.newest.values()))
    return min(cut, high)


def maintain(bus: MaintenanceSite, admin: AdminClient, cache: dict[Any, Any]) -> dict[str, int]:
    """Apply every topic's retention and compaction; dropped message counts per topic.

    A constant number of requests per run, whatever the number of topics: metadata, topic
    settings (new topics only), watermarks, ListOffsets by time, one read of what was
    appended since the last run, one DeleteRecords.
    """
    now = time.monotonic()
    topics = bus.topics()
    seen: set[str] = cache.setdefault("seen", set())
    rules_of: dict[str, Rules] = cache.setdefault("rules", {})
    if now - cache.get("at", 0.0) > _CONFIG_TTL:
        seen.clear()
        rules_of.clear()
        cache["at"] = now
    rules_of.update(_rules(admin, sorted(set(topics) - seen)))  # new topics: read settings
    seen |= set(topics)
    for gone in set(rules_of) - set(topics):
        del rules_of[gone]
    tps = [(t, p) for t in rules_of for p in range(topics[t])]
    if not tps:
        return {}
    marks = bus.bounds(tps)
    wall = int(time.time() * 1000)
    young = bus.offsets_at(
        {
            tp: OffsetSpec.for_timestamp(wall - ms)
            for tp in tps
            if (ms := rules_of[tp[0]].retention_ms) is not None
        }
    )
    states: dict[TopicPartition, _Scan] = {tp: cache.setdefault(tp, _Scan()) for tp in tps}
    _scan(
        bus,
        cache,
        {
            tp: (states[tp], rules_of[tp[0]], *marks[tp])
            for tp in tps
            if rules_of[tp[0]].retention_bytes is not None or rules_of[tp[0]].compact
        },
    )
    cuts: dict[TopicPartition, int] = {}
    for tp in tps:
        low, high = marks[tp]
        cut = _cut(rules_of[tp[0]], states[tp], low, high, young.get(tp))
        if cut > low:
            cuts[tp] = cut
    if not cuts:
        return {}
    futures = admin.delete_records(
        [RdTopicPartition(t, p, o) for (t, p), o in cuts.items()], request_timeout=_TIMEOUT
    )
    dropped: dict[str, int] = {}
    for rtp, future in futures.items():
        try:
            future.result()
        except KafkaException as e:
            where = f"{rtp.topic}[{rtp.partition}]"
            raise BusError(f"maintain: delete records of {where}: {e}") from None
        tp = (rtp.topic, rtp.partition)
        dropped[rtp.topic] = dropped.get(rtp.topic, 0) + cuts[tp] - marks[tp][0]
    return dropped


def close_maintenance(cache: dict[Any, Any]) -> None:
    reader = cache.pop("scanner", None)
    if reader is not None:
        with contextlib.suppress(KafkaException, RuntimeError):
            reader.close()
    cache.clear()
