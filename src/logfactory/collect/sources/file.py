"""The file source: follow every file matching some globs, like ``tail -F`` that remembers.

Reading: one ``fstat`` per file per poll, and when a file grew, one ``pread`` of up to
``chunk_size`` bytes, made into lines by :mod:`.file_tail` (how lines are split, held and cut);
an unterminated last line is delivered as it is once the file has not grown for
``idle_timeout``. Blocking calls (glob, stat, read) run in the default thread executor, a whole
poll step per call.

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
once, whole, by :mod:`.file_gzip`.

Positions (``<data_dir>/collect/<name>.positions.json``) are written atomically, and only for what
the bus holds durably: the agent calls :meth:`FileSource.checkpoint`, flushes the producer, then
awaits :meth:`FileSource.commit` with that snapshot (see ``base.Checkpointed``). A clean stop
therefore resumes exactly after the last line sent. A crash (SIGKILL) leaves lines emitted after
the last commit that may or may not have reached the bus: at start they are looked up on
``logs.raw`` (:mod:`.file_reconcile`) and skipped when there, so nothing is sent twice where the
bus can be read back; elsewhere they are sent again. Nothing is ever skipped.

Nothing to read: while the globs match no file (or only files it cannot open, or only ``.gz``
files without ``read_gzip``), :attr:`FileSource.idle_reason` says so, e.g. ``file source
'secure': no file matches /var/log/secure``; the agent shows it on the health page and the node
at its start. It clears at the first scan that finds a file to follow.

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
from pathlib import Path
from typing import Any

from logfactory.bus.base import BusError
from logfactory.collect.sources import file_positions as positions
from logfactory.collect.sources.base import Emit
from logfactory.collect.sources.context import SourceContext
from logfactory.collect.sources.file_gzip import decompressor, gunzip_head, read_gz
from logfactory.collect.sources.file_lineage import (
    FP_LEN,
    Lineage,
    fingerprint,
    make_mark,
    window_before,
)
from logfactory.collect.sources.file_reconcile import RawLog, furthest
from logfactory.collect.sources.file_tail import Key, LineFramer, Tail
from logfactory.config import FileSourceConfig

__all__ = ["FileSource"]

log = logging.getLogger(__name__)

DEFER_MAX_S = 10.0  # a new file that starts like a followed one waits this long for its fate


def _today() -> int:
    return int(time.time() // 86400 * 86400)


class FileSource:
    """Follows ``config.paths``; see the module docstring for the contract."""

    def __init__(
        self,
        config: FileSourceConfig,
        ctx: SourceContext,
        *,
        chunk_size: int = 1 << 20,
        poll_interval: float = 0.1,
        rescan_interval: float = 1.0,
        rotate_grace: float = 1.0,
    ) -> None:
        if not config.paths:
            raise ValueError("a file source needs 'paths': a list of globs")
        self.name = ctx.name or config.name or "file"
        self.tag = config.tag or "file"
        self.hostname = ctx.hostname
        self.patterns = [os.path.abspath(os.path.expanduser(p)) for p in config.paths]
        self.start_at = config.start_at
        self.idle_timeout = float(config.idle_timeout)
        self.read_gzip = config.read_gzip
        self.positions_path = Path(ctx.data_dir) / "collect" / f"{self.name}.positions.json"
        self.chunk_size = chunk_size
        self.max_line_bytes = config.max_frame_bytes
        self.poll_interval = poll_interval
        self.rescan_interval = rescan_interval
        self.rotate_grace = rotate_grace
        self._lines = LineFramer(self.tag, self.hostname, self.max_line_bytes, ctx.clock)
        self.lineage = Lineage()
        self._tails: dict[Key, Tail] = {}
        self._known: dict[Key, dict[str, Any]] = {}  # persisted but not (yet) seen this run
        self._deferred: dict[Key, float] = {}
        self._had_positions = False
        self._first_scan = True
        self._unreadable: dict[str, str] = {}  # path -> why it cannot be opened
        self.idle_reason: str | None = None  # see the module docstring; set by each scan
        self._last_written: bytes | None = None
        self._write_lock = threading.Lock()
        self._ready = asyncio.Event()
        self._error: BaseException | None = None
        self.raw_log: RawLog | None = ctx.raw_log  # when the bus can be read back
        self._saved_marks: dict[int, int] | None = None

    async def started(self) -> None:
        await self._ready.wait()
        if self._error is not None:
            raise self._error

    # -- the loop --------------------------------------------------------------------------
    async def run(self, emit: Emit, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self._load_positions)
            await loop.run_in_executor(None, self._reconcile)
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
                    if not await self._lines.chunk(tail, data, emit, stop):
                        return
                for tail in idle:
                    await self._lines.rest(tail, emit)
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

    async def _finish(self, t: Tail, emit: Emit) -> None:
        """Let go of a file no glob matches any more once it stopped growing, or of a .gz read
        to its end (kept, closed, as ``done``, so that it is never read again)."""
        await self._lines.rest(t, emit)
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
    # hot path (every poll of every followed file, in the read thread): kept in one piece
    def _io_step(self, rescan: bool) -> tuple[list[tuple[Tail, bytes]], list[Tail], list[Tail]]:  # noqa: C901
        if rescan:
            self._rescan()
        now = time.monotonic()
        reads: list[tuple[Tail, bytes]] = []
        idle: list[Tail] = []
        finished: list[Tail] = []
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
                data = read_gz(t, size, now, self.chunk_size, self.name) if budget > 0 else b""
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

    def _check_truncation(self, t: Tail, size: int) -> None:
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

    def _rescan(self) -> None:
        found: dict[Key, str] = {}
        skipped_gz = False
        for pattern in self.patterns:
            for path in sorted(glob.glob(pattern)):
                if path.endswith(".gz") and not self.read_gzip:
                    skipped_gz = True
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
        self.idle_reason = self._why_idle(found, skipped_gz)

    def _why_idle(self, found: dict[Key, str], skipped_gz: bool) -> str | None:
        """Why this scan found nothing to read, or None when a glob matched a file to follow."""
        globs = ", ".join(self.patterns)
        head = f"file source {self.name!r}"
        if not found:
            if skipped_gz:
                return f"{head}: only .gz files match {globs} (set read_gzip: true to read them)"
            return f"{head}: no file matches {globs}"
        unreadable = [(p, self._unreadable[p]) for p in found.values() if p in self._unreadable]
        if unreadable and len(unreadable) == len(found):
            path, why = unreadable[0]
            more = f" (and {len(unreadable) - 1} more)" if len(unreadable) > 1 else ""
            return f"{head}: cannot open {path}{more}: {why}"
        return None

    def _open(self, key: Key, path: str) -> Tail | None:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            if path not in self._unreadable:
                self._unreadable[path] = exc.strerror or str(exc)
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

    def _open_fd(self, fd: int, key: Key, path: str) -> Tail | None:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != key:  # replaced between stat and open: next scan
            os.close(fd)
            return None
        self._unreadable.pop(path, None)
        gz = path.endswith(".gz")
        head = os.pread(fd, FP_LEN, 0)
        t = Tail(path, fd, key[0], key[1], head, 0, 0, 0, grew_at=time.monotonic())
        if gz:
            t.gz = decompressor()
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
        content = gunzip_head(fd) if gz else head
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

    def _start(self, t: Tail, offset: int) -> Tail:
        t.base = t.emitted = offset
        if t.gz is not None:
            t.skip_to = offset
        else:
            t.pos = offset
            if offset:
                t.window = window_before(t.fd, offset)
        return t

    # -- positions -------------------------------------------------------------------------
    def _load_positions(self) -> None:
        try:
            loaded = positions.read(self.positions_path)
            if loaded is None:
                return
            self._had_positions = True
            self._known, marks, self._saved_marks = loaded
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

    def checkpoint(self, bus_marks: dict[int, int] | None = None) -> object:
        """Positions of all lines emitted so far; durable only after the agent's flush.
        ``bus_marks``: where ``logs.raw`` ended just before this call (see :meth:`_reconcile`)."""
        known = self._known  # read before _tails: see _rescan
        tails = [
            (t.path, t.dev, t.ino, t.head, t.emitted, t.window, t.gz is not None, t.done)
            for t in self._tails.values()
        ]
        return tails, known, self.lineage.marks(), bus_marks

    def _reconcile(self) -> None:
        """Move saved positions past the lines a crash left on the bus uncommitted
        (:mod:`.file_reconcile`); a bus that cannot be read back costs duplicates, not a stop."""
        if self.raw_log is None or not self._saved_marks:
            return
        try:
            ends = furthest(self.raw_log.since(self._saved_marks), self.tag, self.hostname)
        except BusError as exc:
            log.warning("file source %r: cannot read logs.raw back (%s); lines sent after the "
                        "last saved position may arrive twice", self.name, exc)  # fmt: skip
            return
        moved = 0
        for key, entry in self._known.items():
            end = ends.get(entry.get("path", ""))
            if end is None or entry.get("gz") or end <= int(entry.get("offset", 0)):
                continue
            with contextlib.suppress(OSError):
                moved += _move_if_same(entry, key, end)
        if moved:
            log.info("file source %r: %d file(s) had lines on the bus past their saved position "
                     "(a crash); resuming after them", self.name, moved)  # fmt: skip

    async def commit(self, token: object) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._write_positions, token)

    def _write_positions(self, token: object) -> None:
        assert isinstance(token, tuple)
        tails, known, marks, bus_marks = token
        with self._write_lock:  # one writer of the tmp file at a time
            data = positions.encode(tails, known, marks, _today(), bus_marks)
            if data != self._last_written:
                positions.write_atomic(self.positions_path, data)
                self._last_written = data


def _move_if_same(entry: dict[str, Any], key: Key, end: int) -> bool:
    """Move ``entry`` to ``end`` if its path still names that file. Records carry the path a
    line was read under, so after a rotation inside the crash window the same path may have
    meant another file: then the lines are sent again rather than risk skipping any."""
    fd = os.open(entry["path"], os.O_RDONLY)
    try:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != key:
            return False
        entry["offset"] = end
        entry.pop("win", None)
        entry.pop("win_len", None)
        positions.set_window(entry, window_before(fd, end))
        return True
    finally:
        os.close(fd)
