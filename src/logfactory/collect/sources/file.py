"""The file source: follow every file matching some globs, like ``tail -F`` that remembers.

Reading: one ``fstat`` per file per poll, and when a file grew, one ``pread`` of up to
``chunk_size`` bytes, split on ``\\n`` in C (``bytes.split``); a trailing ``\\r`` is dropped and
empty lines are skipped. An unterminated last line is held until its newline arrives, or until
the file has not grown for ``idle_timeout`` (then it is delivered as it is, and whatever is
appended later starts a new line). A line longer than ``max_frame_bytes`` is emitted in pieces
of that size with ``meta["truncated"]=True`` (each with its own offset), so one runaway line
cannot take unbounded memory. Blocking calls (glob, stat, read) run in the default thread
executor, a whole poll step per call.

Identity: a file is its ``(st_dev, st_ino)`` plus a fingerprint of its first ``FP_LEN`` bytes, so
that a recycled inode number is recognised as a new file after a restart.

Rotation: a rename leaves our descriptor on the old inode; it is read to its end and let go (the
descriptor closed) once no glob matches it any more and it has not grown for ``rotate_grace``
seconds (its unterminated last line, which can no longer be completed, is then emitted); a
deleted file is released the same way. The new file at the old name is a new inode, read from
its start. Truncation - the size fell below our read position, or the first bytes changed
(``copytruncate`` followed by fast writes) - restarts at 0. Globs that match the rotated names
(``app.log*``) are the safe choice: a file renamed while the collector is down is then still
found under its new name and finished. A *copy* of a file we follow (``copytruncate``'s) or its
``.gz`` is recognised by :mod:`.file_lineage` and read only from where we had got to.

Compressed files: ``*.gz`` matches are skipped, unless ``read_gzip: true``: then each is read
once, whole (streamed through zlib), and remembered by identity with ``done`` in the positions
so it is never read again. Offsets of its lines count decompressed bytes.

Positions (``<data_dir>/collect/<name>.positions.json``) are written atomically, and only for what
the bus holds durably: the agent calls :meth:`FileSource.checkpoint`, flushes the producer, then
awaits :meth:`FileSource.commit` with that snapshot (see ``base.Checkpointed``). A clean stop
therefore resumes exactly after the last line sent; a crash (SIGKILL) re-sends what was emitted
after the last commit - the lines whose records may or may not have reached the bus - and never
skips. On the local bus this window is at most one checkpoint interval of lines.

Where to start a file not in the positions file: ``start_at: end`` applies only on the very first
run (no positions file yet) to files present at the first scan; any file that shows up later, or
while the agent was down, is read from its beginning.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import os
import stat
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logfactory.collect.sources import file_positions as positions
from logfactory.collect.sources.base import Emit
from logfactory.collect.sources.file_lineage import (
    FP_LEN,
    WINDOW,
    Lineage,
    Mark,
    fingerprint,
    make_mark,
)
from logfactory.config import SourceConfig, parse_duration
from logfactory.record import make_record

__all__ = ["FileSource"]

log = logging.getLogger(__name__)

DEFER_MAX_S = 10.0  # a new file that starts like a followed one waits this long for its fate
_Key = tuple[int, int]


@dataclass(slots=True, eq=False)
class _Tail:
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


def _today() -> int:
    return int(time.time() // 86400 * 86400)


class FileSource:
    """Follows ``config.paths``; see the module docstring for the contract."""

    def __init__(
        self,
        config: SourceConfig,
        *,
        data_dir: Path,
        name: str | None = None,
        hostname: str = "-",
        chunk_size: int = 1 << 20,
        poll_interval: float = 0.1,
        rescan_interval: float = 1.0,
        rotate_grace: float = 1.0,
    ) -> None:
        if not config.paths:
            raise ValueError("a file source needs 'paths': a list of globs")
        self.name = name or config.name or "file"
        self.tag = config.tag or "file"
        self.hostname = hostname
        self.patterns = [os.path.abspath(os.path.expanduser(p)) for p in config.paths]
        self.start_at = config.start_at
        self.idle_timeout = parse_duration(config.idle_timeout)
        self.read_gzip = config.read_gzip
        self.positions_path = Path(data_dir) / "collect" / f"{self.name}.positions.json"
        self.chunk_size = chunk_size
        self.max_line_bytes = config.max_frame_bytes
        self.poll_interval = poll_interval
        self.rescan_interval = rescan_interval
        self.rotate_grace = rotate_grace
        self.lineage = Lineage()
        self._tails: dict[_Key, _Tail] = {}
        self._known: dict[_Key, dict[str, Any]] = {}  # persisted but not (yet) seen this run
        self._deferred: dict[_Key, float] = {}
        self._had_positions = False
        self._first_scan = True
        self._unreadable: set[str] = set()
        self._last_written: bytes | None = None
        self._write_lock = threading.Lock()
        self._ready = asyncio.Event()
        self._error: BaseException | None = None

    async def started(self) -> None:
        await self._ready.wait()
        if self._error is not None:
            raise self._error

    # -- the loop --------------------------------------------------------------------------
    async def run(self, emit: Emit, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self._load_positions)
            await loop.run_in_executor(None, self._rescan)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            raise
        self._ready.set()
        next_scan = time.monotonic() + self.rescan_interval
        try:
            while not stop.is_set():
                now = time.monotonic()
                rescan = now >= next_scan
                if rescan:
                    next_scan = now + self.rescan_interval
                reads, idle, finished = await loop.run_in_executor(None, self._io_step, rescan)
                for tail, data in reads:
                    if not await self._emit_chunk(tail, data, emit, stop):
                        return
                for tail in idle:
                    await self._emit_rest(tail, emit)
                for tail in finished:
                    await self._finish(tail, emit)
                if not reads:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.poll_interval)
        finally:
            for tail in self._tails.values():
                if tail.fd >= 0:
                    os.close(tail.fd)
                    tail.fd = -1

    async def _emit_chunk(self, t: _Tail, data: bytes, emit: Emit, stop: asyncio.Event) -> bool:
        buf = t.rest + data if t.rest else data
        off = start = t.base
        lines = buf.split(b"\n")
        t.rest = rest = lines.pop()
        t.base = off + len(buf) - len(rest)
        tag, host, path, limit = self.tag, self.hostname, t.path, self.max_line_bytes
        for line in lines:
            nxt = off + len(line) + 1
            if line[-1:] == b"\r":
                line = line[:-1]
            if len(line) > limit:
                await self._emit_pieces(line, off, path, emit)
            elif line:
                await emit(make_record(tag, host, line, {"path": path, "offset": off}))
            t.emitted = off = nxt
            if stop.is_set():
                _slide(t, buf, off - start)
                return False
        _slide(t, buf, t.base - start)
        if len(rest) > limit:
            # no newline in sight: hand on what cannot be held, keep the last partial piece
            keep = len(rest) % limit or limit
            await self._emit_pieces(rest[:-keep], t.base, path, emit)
            _slide(t, rest, len(rest) - keep)
            t.base += len(rest) - keep
            t.emitted = t.base
            t.rest = rest[-keep:]
        return True

    async def _emit_pieces(self, line: bytes, off: int, path: str, emit: Emit) -> None:
        """A line longer than ``max_line_bytes`` goes out in pieces flagged ``truncated``."""
        limit = self.max_line_bytes
        for i in range(0, len(line), limit):
            meta = {"path": path, "offset": off + i, "truncated": True}
            await emit(make_record(self.tag, self.hostname, line[i : i + limit], meta))

    async def _emit_rest(self, t: _Tail, emit: Emit) -> None:
        """Deliver the unterminated last line as it is (idle file, or one we let go of)."""
        if not t.rest:
            return
        rest = t.rest
        line = rest[:-1] if rest.endswith(b"\r") else rest
        if line:
            await emit(
                make_record(self.tag, self.hostname, line, {"path": t.path, "offset": t.base})
            )
        _slide(t, rest, len(rest))
        t.base += len(rest)
        t.emitted = t.base
        t.rest = b""

    async def _finish(self, t: _Tail, emit: Emit) -> None:
        """Let go of a file no glob matches any more once it stopped growing, or of a .gz read
        to its end (kept, closed, as ``done``, so that it is never read again)."""
        await self._emit_rest(t, emit)
        if t.fd >= 0:
            os.close(t.fd)
            t.fd = -1
        if t.gz is not None and t.gone_since is None:
            t.done = True
            return
        if t.gz is None:
            self.lineage.add(make_mark(t.head, t.emitted, t.window, _today()))
        self._tails = {k: v for k, v in self._tails.items() if v is not t}

    # -- blocking work (thread executor) ---------------------------------------------------
    def _io_step(self, rescan: bool) -> tuple[list[tuple[_Tail, bytes]], list[_Tail], list[_Tail]]:
        if rescan:
            self._rescan()
        now = time.monotonic()
        reads: list[tuple[_Tail, bytes]] = []
        idle: list[_Tail] = []
        finished: list[_Tail] = []
        budget = 4 * self.chunk_size
        for t in list(self._tails.values()):
            if t.done:
                if t.gone_since is not None and now - t.gone_since >= self.rotate_grace:
                    finished.append(t)
                continue
            try:
                size = os.fstat(t.fd).st_size
            except OSError:
                continue
            if t.gz is not None:
                before = t.pos
                data = self._read_gz(t, size, now) if budget > 0 else b""
                if data is None:
                    finished.append(t)
                elif t.pos != before:
                    budget -= len(data)
                    reads.append((t, data))
                elif (
                    t.gz.eof
                    and t.zpos >= size
                    and now - t.grew_at >= self.rotate_grace
                    and not t.gz.unused_data.strip(b"\0")
                ):
                    finished.append(t)
                continue
            if size > t.pos or size < t.pos:
                self._check_truncation(t, size)
            if size > t.pos and budget > 0:
                try:
                    data = os.pread(t.fd, min(self.chunk_size, size - t.pos), t.pos)
                except OSError as exc:
                    log.warning("file source %r: cannot read %s: %s", self.name, t.path, exc)
                    continue
                if data:
                    t.pos += len(data)
                    t.grew_at = now
                    budget -= len(data)
                    reads.append((t, data))
            elif size == t.pos:
                if t.gone_since is not None and now - t.gone_since >= self.rotate_grace:
                    finished.append(t)
                elif t.rest and now - t.grew_at >= self.idle_timeout:
                    idle.append(t)
        return reads, idle, finished

    def _check_truncation(self, t: _Tail, size: int) -> None:
        """Size below our position, or other first bytes: the file was truncated (and maybe
        rewritten past our position already). Read it again from 0; remember what we had
        read, so that a copy of it (copytruncate) continues from there."""
        try:
            head = os.pread(t.fd, FP_LEN, 0)
        except OSError:
            return
        if size >= t.pos and head.startswith(t.head):
            if len(t.head) < FP_LEN:
                t.head = head
            return
        log.info("file source %r: %s was truncated; reading it from the start",
                 self.name, t.path)  # fmt: skip
        self.lineage.add(make_mark(t.head, t.emitted, t.window, _today()))
        t.pos = t.base = t.emitted = 0
        t.rest = t.window = b""
        t.head = head

    def _read_gz(self, t: _Tail, size: int, now: float) -> bytes | None:
        """The next decompressed bytes of a .gz (b"" while it has no more yet, None if it is
        corrupt), minus what lies before ``skip_to``."""
        out = bytearray()
        want = self.chunk_size
        try:
            while len(out) < want:
                d = t.gz
                if d.unconsumed_tail:
                    src = d.unconsumed_tail
                elif d.eof:
                    src = d.unused_data
                    if not src.strip(b"\0"):
                        if t.zpos >= size:
                            break
                        src = self._pread_gz(t, size)
                    t.gz = d = zlib.decompressobj(wbits=31)  # the next member
                elif t.zpos < size:
                    src = self._pread_gz(t, size)
                else:
                    break
                out += d.decompress(src, want - len(out))
        except (zlib.error, OSError) as exc:
            log.warning("file source %r: %s is not readable gzip after %d bytes (%s); "
                        "leaving it", self.name, t.path, t.pos + len(out), exc)  # fmt: skip
            return None
        if out:
            t.grew_at = now
        data = bytes(out)
        start = t.pos
        t.pos += len(data)
        if start >= t.skip_to:
            return data
        cut = min(len(data), t.skip_to - start)
        t.skipped = (t.skipped + data[:cut])[-WINDOW:]
        if t.pos >= t.skip_to and t.expect is not None:
            mark, t.expect = t.expect, None
            if not mark.matches_window(t.skipped[len(t.skipped) - mark.win_len :]):
                log.info("file source %r: %s is not a copy of what we read; reading it all",
                         self.name, t.path)  # fmt: skip
                t.gz = zlib.decompressobj(wbits=31)
                t.pos = t.zpos = t.skip_to = t.base = t.emitted = 0
                return b""
        return data[cut:]

    def _pread_gz(self, t: _Tail, size: int) -> bytes:
        data = os.pread(t.fd, min(self.chunk_size, size - t.zpos), t.zpos)
        t.zpos += len(data)
        return data

    def _rescan(self) -> None:
        found: dict[_Key, str] = {}
        for pattern in self.patterns:
            for path in sorted(glob.glob(pattern)):
                if path.endswith(".gz") and not self.read_gzip:
                    continue
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    found.setdefault((st.st_dev, st.st_ino), path)
        now = time.monotonic()
        for key, t in self._tails.items():
            where = found.get(key)
            if where is None:
                if t.gone_since is None:
                    t.gone_since = now
            else:
                t.path = where
                t.gone_since = None
        opened = {
            key: self._open(key, path) for key, path in found.items() if key not in self._tails
        }
        new = {key: t for key, t in opened.items() if t is not None}
        self._deferred = {k: v for k, v in self._deferred.items() if k in found and k not in new}
        if new:
            # copy, then swap: checkpoint() reads these dicts on the event loop meanwhile; the
            # order (tails first, then known) means a checkpoint always sees every file
            self._tails = {**self._tails, **new}
            self._known = {k: e for k, e in self._known.items() if k not in new}
        self._first_scan = False

    def _open(self, key: _Key, path: str) -> _Tail | None:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            if path not in self._unreadable:
                self._unreadable.add(path)
                log.warning("file source %r: cannot open %s: %s", self.name, path, exc)
            return None
        try:
            return self._open_fd(fd, key, path)
        except OSError as exc:
            log.warning("file source %r: cannot read %s: %s", self.name, path, exc)
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
        return None

    def _open_fd(self, fd: int, key: _Key, path: str) -> _Tail | None:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != key:  # replaced between stat and open: next scan
            os.close(fd)
            return None
        self._unreadable.discard(path)
        gz = path.endswith(".gz")
        head = os.pread(fd, FP_LEN, 0)
        t = _Tail(path, fd, key[0], key[1], head, 0, 0, 0, grew_at=time.monotonic())
        if gz:
            t.gz = zlib.decompressobj(wbits=31)
        saved = self._known.get(key)
        if saved is not None:
            fp_len, offset = int(saved.get("fp_len", 0)), int(saved.get("offset", 0))
            same = len(head) >= fp_len and fingerprint(head[:fp_len]) == saved.get("fp")
            if same and bool(saved.get("gz")) == gz and (gz or st.st_size >= offset):
                if saved.get("done"):
                    os.close(fd)
                    t.fd, t.done, t.emitted = -1, True, offset
                    return t
                return self._start(t, offset)
            log.info("file source %r: %s is not the file we read before (new content or "
                     "truncated); reading it from the start", self.name, path)  # fmt: skip
        elif self._first_scan and not self._had_positions and self.start_at == "end" and not gz:
            return self._start(t, st.st_size)
        content = _gunzip_head(fd) if gz else head
        if content and any(
            o.gz is None and not o.done and o.head and content.startswith(o.head)
            for o in self._tails.values()
        ):
            first = self._deferred.setdefault(key, time.monotonic())
            if time.monotonic() - first < DEFER_MAX_S:
                os.close(fd)  # a copy of a file we still follow: wait until we let go of it
                return None
        extra = [m for e in self._known.values() if (m := positions.known_mark(e)) is not None]
        for mark in self.lineage.candidates(content, extra):
            if gz:
                t.expect = mark
                return self._start(t, mark.offset)
            if st.st_size >= mark.offset and mark.matches_window(
                os.pread(fd, mark.win_len, mark.offset - mark.win_len)
            ):
                log.info("file source %r: %s continues a file we read up to %d",
                         self.name, path, mark.offset)  # fmt: skip
                return self._start(t, mark.offset)
        return self._start(t, 0)

    def _start(self, t: _Tail, offset: int) -> _Tail:
        t.base = t.emitted = offset
        if t.gz is not None:
            t.skip_to = offset
        else:
            t.pos = offset
            if offset:
                n = min(WINDOW, offset)
                t.window = os.pread(t.fd, n, offset - n)
        return t

    # -- positions -------------------------------------------------------------------------
    def _load_positions(self) -> None:
        try:
            loaded = positions.read(self.positions_path)
            if loaded is None:
                return
            self._had_positions = True
            self._known, marks = loaded
            self.lineage.load(marks)
        except (ValueError, KeyError, TypeError) as exc:
            # a damaged file must not stop collection; re-reading beats skipping
            self._had_positions = True
            log.error("file source %r: ignoring unreadable %s (%s); files are read from the "
                      "start", self.name, self.positions_path, exc)  # fmt: skip
            self._known = {}
            self.lineage = Lineage()

    def lag(self) -> tuple[int, str]:
        """Bytes written to the followed files beyond the last emitted line (a .gz being read
        counts its compressed bytes not yet read)."""
        behind = 0
        for t in list(self._tails.values()):
            if t.done:
                continue
            try:
                size = os.fstat(t.fd).st_size
            except OSError:  # closed by the reader thread meanwhile
                continue
            behind += max(0, size - (t.zpos if t.gz is not None else t.emitted))
        return behind, "bytes"

    def checkpoint(self) -> object:
        """Positions of all lines emitted so far; durable only after the agent's flush."""
        known = self._known  # read before _tails: see _rescan
        tails = [
            (t.path, t.dev, t.ino, t.head, t.emitted, t.window, t.gz is not None, t.done)
            for t in self._tails.values()
        ]
        return tails, known, self.lineage.marks()

    async def commit(self, token: object) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._write_positions, token)

    def _write_positions(self, token: object) -> None:
        assert isinstance(token, tuple)
        tails, known, marks = token
        with self._write_lock:  # one writer of the tmp file at a time
            data = positions.encode(tails, known, marks, _today())
            if data != self._last_written:
                positions.write_atomic(self.positions_path, data)
                self._last_written = data


def _slide(t: _Tail, buf: bytes, end: int) -> None:
    """``buf[:end]`` was emitted: keep the last ``WINDOW`` bytes before ``emitted`` (once per
    chunk, not per line)."""
    if end >= WINDOW:
        t.window = buf[end - WINDOW : end]
    elif end > 0:
        t.window = (t.window + buf[:end])[-WINDOW:]


def _gunzip_head(fd: int) -> bytes:
    """The first decompressed bytes of a .gz (b"" when there are none yet)."""
    try:
        return zlib.decompressobj(wbits=31).decompress(os.pread(fd, 1 << 16, 0), FP_LEN)
    except (zlib.error, OSError):
        return b""
