"""One file the file source follows: its state, and how its bytes become line records.

Kept apart from :mod:`.file` (which finds, opens, reads and lets go of files) because this is
the per-chunk hot path and the one place that decides what a line is: a chunk is split on
``\\n`` in C (``bytes.split``); a trailing ``\\r`` is dropped and empty lines are skipped. An
unterminated last line is held (``Tail.rest``) until its newline arrives, or until the source
finds it idle and calls :meth:`LineFramer.rest` (then it is delivered as it is, and whatever is
appended later starts a new line). A line longer than ``max_frame_bytes`` is emitted in pieces
of that size with ``meta["truncated"]=True`` (each with its own offset), so one runaway line
cannot take unbounded memory. Every record carries ``meta = {"path", "offset"}``; the lines of
one read share its receive time and go to ``emit.many`` in runs of ``RUN_RECORDS``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from logfactory.collect.sources.base import RUN_RECORDS, Emit
from logfactory.collect.sources.file_lineage import WINDOW, Mark
from logfactory.record import Record, make_record, now_ns

__all__ = ["Key", "LineFramer", "Tail", "slide"]

Key = tuple[int, int]  # (st_dev, st_ino)


@dataclass(slots=True, eq=False)
class Tail:
    """One followed file. ``rest`` holds unterminated bytes that start at offset ``base``;
    ``emitted`` is the offset just after the last line handed to ``emit`` and ``window`` the
    (up to ``WINDOW``) bytes before it. For a ``.gz``, offsets count decompressed bytes,
    ``zpos`` is the compressed read position and bytes before ``skip_to`` were read before."""

    path: str
    fd: int
    dev: int
    ino: int
    head: bytes
    pos: int
    base: int
    emitted: int
    rest: bytes = b""
    gone_since: float | None = None
    grew_at: float = 0.0
    window: bytes = b""
    gz: Any = None  # zlib decompressobj while reading a .gz
    zpos: int = 0
    skip_to: int = 0
    expect: Mark | None = None  # a .gz continuing a mark: its window is checked at skip_to
    skipped: bytes = b""
    done: bool = False  # a .gz read to its end


class LineFramer:
    """Turns the bytes read from a :class:`Tail` into records for ``emit`` and keeps the tail's
    ``rest``/``base``/``emitted``/``window`` in step with what was handed over."""

    __slots__ = ("clock", "host", "limit", "tag")

    def __init__(self, tag: str, host: str, limit: int, clock: Callable[[], int] = now_ns) -> None:
        self.clock = clock
        self.tag = tag
        self.host = host
        self.limit = limit

    async def chunk(self, t: Tail, data: bytes, emit: Emit, stop: asyncio.Event) -> bool:
        """Emit the complete lines of ``rest + data``; False if ``stop`` was set meanwhile
        (``emitted`` then says how far it got)."""
        buf = t.rest + data if t.rest else data
        off = start = t.base
        lines = buf.split(b"\n")
        t.rest = rest = lines.pop()
        t.base = off + len(buf) - len(rest)
        tag, host, path, limit = self.tag, self.host, t.path, self.limit
        received = self.clock()  # one read, one receive time
        run: list[Record] = []
        for line in lines:
            nxt = off + len(line) + 1
            if line[-1:] == b"\r":
                line = line[:-1]
            if len(line) > limit:
                if run:
                    t.emitted = off  # many() produces before it first waits
                    await emit.many(run)
                    run = []
                await self.pieces(line, off, path, emit)
                t.emitted = nxt
            elif line:
                try:
                    text = line.decode()
                except UnicodeDecodeError:
                    meta = {"path": path, "offset": off}
                    run.append(make_record(tag, host, line, meta, received))
                else:
                    run.append(Record(tag, host, received, text, {"path": path, "offset": off}))
            off = nxt
            if len(run) >= RUN_RECORDS:
                t.emitted = off
                await emit.many(run)
                run = []
                if stop.is_set():
                    slide(t, buf, off - start)
                    return False
        t.emitted = off
        if run:
            await emit.many(run)
        if stop.is_set():
            slide(t, buf, off - start)
            return False
        slide(t, buf, t.base - start)
        if len(rest) > limit:
            # no newline in sight: hand on what cannot be held, keep the last partial piece
            keep = len(rest) % limit or limit
            await self.pieces(rest[:-keep], t.base, path, emit)
            slide(t, rest, len(rest) - keep)
            t.base += len(rest) - keep
            t.emitted = t.base
            t.rest = rest[-keep:]
        return True

    async def pieces(self, line: bytes, off: int, path: str, emit: Emit) -> None:
        """A line longer than ``limit`` goes out in pieces flagged ``truncated``."""
        limit = self.limit
        for i in range(0, len(line), limit):
            meta = {"path": path, "offset": off + i, "truncated": True}
            await emit(make_record(self.tag, self.host, line[i : i + limit], meta, self.clock()))

    async def rest(self, t: Tail, emit: Emit) -> None:
        """Deliver the unterminated last line as it is (idle file, or one we let go of)."""
        if not t.rest:
            return
        rest = t.rest
        line = rest[:-1] if rest.endswith(b"\r") else rest
        if line:
            meta = {"path": t.path, "offset": t.base}
            await emit(make_record(self.tag, self.host, line, meta, self.clock()))
        slide(t, rest, len(rest))
        t.base += len(rest)
        t.emitted = t.base
        t.rest = b""


def slide(t: Tail, buf: bytes, end: int) -> None:
    """``buf[:end]`` was emitted: keep the last ``WINDOW`` bytes before ``emitted`` (once per
    chunk, not per line)."""
    if end >= WINDOW:
        t.window = buf[end - WINDOW : end]
    elif end > 0:
        t.window = (t.window + buf[:end])[-WINDOW:]
