"""Exactly once for files across a crash: find the lines already on the bus past the positions.

Why: positions are written after the bus confirmed the lines (checkpoint, flush, commit), so a
collector killed between two commits has sent lines whose positions were never saved; read from
the saved positions again, they would arrive twice. Every checkpoint therefore also saves where
``logs.raw`` ended just *before* it (:meth:`RawLog.marks`): any line emitted after that
checkpoint was appended after those marks. On start the file source reads ``logs.raw`` from the
saved marks to its end, takes its own records (its tag, its host, ``meta.path``/``offset``) and
moves each file's position past the last such line (:func:`furthest`). A line's end is its
offset plus its bytes; the newline after it then reads as an empty line, which yields nothing.

A record names its file by the path it was read under, so a position moves only while its
saved path still names the same file: when a rotation happened between the last checkpoint and
the crash, that file's lines of the window are sent again (never skipped).

Where the bus cannot be read from here (an edge shipping over HTTP) or records wait in the
collector's spool rather than on the bus, a crash can still re-send up to one checkpoint of
lines: at least once, never lost.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Protocol

import msgspec

from logfactory.bus.base import Bus, BusError
from logfactory.record import Record, decode_record
from logfactory.topics import RAW

__all__ = ["BusRawLog", "RawLog", "furthest"]

_SCAN_TIMEOUT_S = 60.0


class RawLog(Protocol):
    """What a file source needs of the bus to reconcile its positions."""

    def marks(self) -> dict[int, int]:
        """Next offset of each ``logs.raw`` partition now."""

    def since(self, marks: dict[int, int]) -> Iterator[Record]:
        """The records of ``logs.raw`` from ``marks`` to its current end."""


class BusRawLog:
    """:class:`RawLog` on a bus this process can read (the embedded bus, Kafka)."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    def marks(self) -> dict[int, int]:
        return {p: high for p, (_low, high) in self.bus.watermarks(RAW).items()}

    def since(self, marks: dict[int, int]) -> Iterator[Record]:
        ends = self.bus.watermarks(RAW)
        todo = {p: max(marks.get(p, high), low) for p, (low, high) in ends.items()}
        todo = {p: start for p, start in todo.items() if start < ends[p][1]}
        if not todo:
            return
        consumer = self.bus.consumer(None, [RAW], "earliest")
        try:
            for p, (_low, high) in ends.items():
                consumer.seek((RAW, p), todo.get(p, high))
            deadline = time.monotonic() + _SCAN_TIMEOUT_S
            left = todo  # partitions not yet read to their end
            while left:
                if time.monotonic() > deadline:
                    raise BusError(f"reading {RAW} back took over {_SCAN_TIMEOUT_S:g} s")
                for msg in consumer.poll(5000, timeout=0.5):
                    if msg.partition not in left or msg.offset >= ends[msg.partition][1]:
                        continue
                    if msg.offset + 1 >= ends[msg.partition][1]:
                        del left[msg.partition]
                    try:
                        yield decode_record(msg.value)
                    except (msgspec.DecodeError, msgspec.ValidationError):
                        continue  # not a record: not one of ours either
        finally:
            consumer.close()


def furthest(records: Iterable[Record], tag: str, host: str) -> dict[str, int]:
    """Per path, the offset just after the last line of this source among ``records``."""
    out: dict[str, int] = {}
    for rec in records:
        if rec.source != tag or rec.host != host:
            continue
        meta = rec.meta
        path, offset = meta.get("path"), meta.get("offset")
        if not isinstance(path, str) or not isinstance(offset, int):
            continue
        end = offset + len(rec.raw if rec.raw is not None else rec.line.encode())
        if end > out.get(path, -1):
            out[path] = end
    return out
