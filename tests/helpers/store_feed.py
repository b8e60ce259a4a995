"""What the store role reads, put on a real local bus: parsed records and events made from
``store_data.sample_docs``, values that are neither, and the documents the role must make of
them (the same ``from_parsed``/``from_event`` over the same bytes, so the oracle can judge a
store's answers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
from tests.helpers.store_data import DAY_NS, sample_docs

from logfactory.bus.local import LocalBus
from logfactory.config import Config, load_config
from logfactory.event import Event, Header, encode_event, format_time
from logfactory.factory.package import ParsedRecord
from logfactory.record import now_ns
from logfactory.stats import read_all_stats
from logfactory.store.document import StoredDoc
from logfactory.topics import PARSED, ensure_topics

__all__ = [
    "EVENT_TOPIC",
    "Fed",
    "bus_of",
    "feed",
    "recent_docs",
    "store_config",
    "store_counters",
    "store_problems",
]

EVENT_TOPIC = "events.ALERT"
_json = msgspec.json.Encoder()


def store_config(tmp_path: Path, **store: Any) -> Config:
    """A node configuration with its data in ``tmp_path/data`` and ``store`` settings (quick
    commits by default, so tests see records soon)."""
    settings = {"commit_interval": "200ms", "batch_size": 500, **store}
    path = tmp_path / "store.yaml"
    path.write_text(json.dumps({"node": {"data_dir": str(tmp_path / "data")}, "store": settings}))
    return load_config(str(path))


def recent_docs(n: int, seed: int = 0) -> list[StoredDoc]:
    """``sample_docs`` that arrived yesterday (UTC): well inside the store's retention, so a
    store that starts again (and applies retention) keeps them."""
    return sample_docs(n, seed, start_ns=(now_ns() // DAY_NS - 1) * DAY_NS)


def bus_of(config: Config) -> LocalBus:
    bus = LocalBus(config.data_dir / "bus", default_partitions=config.bus.partitions)
    ensure_topics(bus, config)
    return bus


def _value(doc: StoredDoc) -> tuple[str, bytes, bytes]:
    if doc.kind == "log":
        rec = ParsedRecord(
            time=format_time(doc.time), received=format_time(doc.received), source=doc.source,
            host=doc.host, workshop=doc.workshop, message=doc.message, fields=doc.fields,
            pattern=doc.pattern or None, status=doc.status or None, position=doc.id,
        )  # fmt: skip
        return PARSED, doc.host.encode(), _json.encode(rec)
    header = Header(
        id=doc.id, time=format_time(doc.time), type="ALERT", subtype=doc.subtype or None,
        severity=doc.severity, source=doc.source or None, host=doc.host or None,
        received=format_time(doc.received), pattern=doc.pattern or None, reason=doc.message,
    )  # fmt: skip
    return EVENT_TOPIC, doc.id.encode(), encode_event(Event(header=header, body=doc.fields))


class Fed:
    """What was put on the bus: the ids the store must hold and the malformed values."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.values: list[tuple[str, bytes]] = []  # (topic, value) of every good message
        self.bad: list[tuple[str, bytes]] = []


def feed(bus: LocalBus, docs: list[StoredDoc], *, bad: int = 0, into: Fed | None = None) -> Fed:
    """Put ``docs`` (logs on logs.parsed, events on events.ALERT; ``sample_docs``) and ``bad``
    malformed values on the bus."""
    fed = into or Fed()
    producer = bus.producer()
    for doc in docs:
        topic, key, value = _value(doc)
        producer.produce(topic, value, key)
        fed.ids.append(doc.id)
        fed.values.append((topic, value))
    for i in range(bad):
        topic = PARSED if i % 2 == 0 else EVENT_TOPIC
        value = b'{"not": "a record"}' if i % 4 < 2 else b"\xff\xfe not json " + bytes([i % 256])
        producer.produce(topic, value)
        fed.bad.append((topic, value))
    producer.flush()
    producer.close()
    return fed


def store_counters(config: Config) -> dict[str, int]:
    """The ``store`` counters summed over every store process that wrote stats."""
    total: dict[str, int] = {}
    for snap in read_all_stats(config.data_dir / "stats"):
        if str(snap.get("process", "")).startswith("store-"):
            for name, value in snap.get("counters", {}).get("store", {}).items():
                total[name] = total.get(name, 0) + int(value)
    return total


def store_problems(config: Config) -> list[str]:
    """The problems live store processes report."""
    return [
        text
        for snap in read_all_stats(config.data_dir / "stats")
        if str(snap.get("process", "")).startswith("store-") and snap.get("alive")
        for text in snap.get("problems", {}).values()
    ]
