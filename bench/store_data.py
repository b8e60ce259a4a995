"""The store benchmark's data: the demo mix, parsed by the real event factory, in batches.

Why the factory rather than records made up here: what the store indexes (which decoded
fields, which events, how long the messages are, which severities) is what the factory makes of
the demo feed, so the bench measures the store on the shape it will hold, and follows it when a
workshop or a mapping changes.

Batch ``k`` is the demo feed (:class:`~logfactory.collect.sources.demo.DemoGenerator`, seeded
with ``k``, ``HOSTS`` compute nodes) for its slice of the ``DAYS``-day window at the rate that
puts ``lines`` lines in the window, put through a fresh :class:`FactoryWorker` configured as
``examples/demo.yaml`` (minus multi-line merging, see :func:`bench_config`). Its outputs are
the messages the factory would write to ``logs.parsed`` and ``events.*`` (dead letters are
left out: the store does not keep them). Each batch's worker starts with an empty pattern
library, so it announces the demo's templates again, as ``NEW_PATTERN`` events with the same
ids as batch 0's: those are kept from batch 0 only (a template is new once). A batch depends
on nothing but ``(VERSION, lines, k)``: the same batch comes out every time, alone or in a run
of all of them. The raw positions are ``logs.raw/0/<k * BATCH_LINES + i>``, so ids never
repeat across batches.

Change :data:`VERSION` whenever the data would change: the kept store is rebuilt then.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from logfactory.bus.base import Message
from logfactory.bus.local import LocalBus
from logfactory.collect.sources.demo import DemoGenerator
from logfactory.config import Config, parse_config
from logfactory.event import topic_for_type
from logfactory.factory.worker import FactoryWorker
from logfactory.record import Record, encode_record
from logfactory.stats import StatsRegistry
from logfactory.store.document import StoredDoc, from_event, from_parsed
from logfactory.store.engine import Position
from logfactory.topics import PARSED, RAW, ensure_topics

__all__ = [
    "BATCH_LINES",
    "DAYS",
    "HOSTS",
    "LINES",
    "START_NS",
    "VERSION",
    "Batch",
    "BatchMaker",
    "bench_config",
    "bench_config_text",
    "end_ns",
    "to_docs",
]

VERSION = 1
LINES = 10_000_000
BATCH_LINES = 50_000
DAYS = 7
HOSTS = 256
SEC = 1_000_000_000
DAY_NS = 86_400 * SEC
START_NS = 1_761_955_200 * SEC  # 2026-11-01T00:00:00Z: fixed, so the kept store stays valid
NEW_PATTERN = topic_for_type("NEW_PATTERN")
ROOT = Path(__file__).resolve().parent.parent
_MULTILINE = "    multiline:\n      timeout: 250ms\n"

Message3 = tuple[str, bytes | None, bytes]
"""(topic, key, value): one message as the factory would write it."""


def end_ns(lines: int = LINES, batch_lines: int = BATCH_LINES) -> int:
    """The end (exclusive) of the data's window."""
    return START_NS + _batches(lines, batch_lines) * _span_ns(lines, batch_lines)


def _batches(lines: int, batch_lines: int) -> int:
    return max(1, lines // batch_lines)


def _span_ns(lines: int, batch_lines: int) -> int:
    return DAYS * DAY_NS // _batches(lines, batch_lines)


def bench_config_text(data_dir: Path) -> str:
    """``examples/demo.yaml`` with its data in ``data_dir`` and no multi-line merging: the demo
    writes no multi-line records, and a merge holds each host's latest line until the next one
    or a wall-clock timeout, which would make a batch's end depend on the machine's speed."""
    text = (ROOT / "examples" / "demo.yaml").read_text()
    if _MULTILINE not in text:
        raise RuntimeError("examples/demo.yaml changed its multiline block: update bench")
    return text.replace(_MULTILINE, "").replace("var/demo", str(data_dir))


def bench_config(data_dir: Path) -> Config:
    """:func:`bench_config_text`, parsed."""
    return parse_config(bench_config_text(data_dir), "store-bench.yaml")


@dataclass(slots=True)
class Batch:
    """One batch: its demo lines' count and bytes, and what the factory made of them."""

    index: int
    lines: int
    raw_bytes: int
    messages: list[Message3]

    @property
    def logs(self) -> int:
        return sum(1 for topic, _, _ in self.messages if topic == PARSED)


class BatchMaker:
    """Makes batches (see the module docstring); holds a scratch bus the workers need.
    ``batch_lines`` other than :data:`BATCH_LINES` is for tests (small batches, other data)."""

    def __init__(self, lines: int = LINES, batch_lines: int = BATCH_LINES) -> None:
        self.lines = lines
        self.batch_lines = batch_lines
        self._tmp = tempfile.TemporaryDirectory(prefix="store-bench-")
        self.config = bench_config(Path(self._tmp.name) / "data")
        self._bus = LocalBus(self.config.data_dir / "bus")
        ensure_topics(self._bus, self.config)

    @property
    def batches(self) -> int:
        return _batches(self.lines, self.batch_lines)

    def raw(self, k: int) -> tuple[list[Message], int]:
        """Batch ``k``'s demo lines as ``logs.raw`` messages, and their bytes (UTF-8, no line
        end: each line as the demo source emits it)."""
        size, span = self.batch_lines, _span_ns(self.lines, self.batch_lines)
        start = START_NS + k * span
        gen = DemoGenerator(seed=k, hosts=HOSTS, start_ns=start, rate=size * SEC / span)
        first = k * size
        out: list[Message] = []
        raw = 0
        for i, (t, tag, host, line) in zip(range(size), gen.timed(), strict=False):
            raw += len(line.encode())
            record = Record(source=tag, host=host, received=t, line=line)
            out.append(Message(RAW, 0, first + i, host.encode(), encode_record(record), t // 10**6))
        return out, raw

    def make(self, k: int) -> Batch:
        if not 0 <= k < self.batches:
            raise ValueError(f"batch {k} is not one of 0..{self.batches - 1}")
        raw, raw_bytes = self.raw(k)
        worker = FactoryWorker(self.config, self._bus, StatsRegistry("store-bench"))
        try:
            prepared = worker.prepare(raw)  # one call: one partition state for the whole batch
        finally:
            worker.close()
        messages = [] if prepared is None else prepared.out.messages
        keep = [
            m
            for m in messages
            if m[0] == PARSED or (m[0].startswith("events.") and (k == 0 or m[0] != NEW_PATTERN))
        ]
        return Batch(k, len(raw), raw_bytes, keep)

    def close(self) -> None:
        self._bus.close()
        self._tmp.cleanup()


def to_docs(
    messages: Sequence[Message3], offsets: dict[str, int]
) -> list[tuple[Position, StoredDoc]]:
    """Messages as the store role turns them into documents, each with a bus position of its
    own (``offsets`` holds each topic's next offset and is advanced)."""
    out: list[tuple[Position, StoredDoc]] = []
    for topic, _key, value in messages:
        offset = offsets.get(topic, 0)
        offsets[topic] = offset + 1
        origin = f"{topic}/0/{offset}"
        try:
            doc = from_parsed(value, origin) if topic == PARSED else from_event(value, origin)
        except (msgspec.DecodeError, ValueError):
            continue  # the role dead-letters these; none are expected from the demo
        out.append(((topic, 0, offset), doc))
    return out
