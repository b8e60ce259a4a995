"""The file source: follow every file matching some globs, like ``tail -F`` that remembers.

Reading: one ``fstat`` per file per poll, and when a file grew, one ``pread`` of up to
``chunk_size`` bytes, split on ``\\n`` in C (``bytes.split``); a trailing ``\\r`` is dropped and
empty lines are skipped. An unterminated last line is kept until its newline arrives. A line
longer than ``max_frame_bytes`` is emitted in pieces of that size with ``meta["truncated"]=True``
(each with its own offset), so one runaway line cannot take unbounded memory. Blocking
calls (glob, stat, read) run in the default thread executor, a whole poll step per call.

Identity: a file is its ``(st_dev, st_ino)`` plus a fingerprint of its first ``FP_LEN`` bytes, so
that a recycled inode number is recognised as a new file after a restart.

Rotation: a rename leaves our descriptor on the old inode; it is read to its end and let go once
no glob matches it any more and it has not grown for ``rotate_grace`` seconds (its unterminated
last line, which can no longer be completed, is then emitted). The new file at the old name is a
new inode and is read from its start. Truncation (size below our read position) restarts at 0.

Positions (``<data_dir>/collect/<name>.positions.json``) are written atomically, and only for what
the bus holds durably: the agent calls :meth:`FileSource.checkpoint`, flushes the producer, then
awaits :meth:`FileSource.commit` with that snapshot (see ``base.Checkpointed``). A clean stop
therefore resumes exactly after the last line sent; a crash re-sends at most what was emitted since
the last commit (at-least-once), never skips.

Where to start a file not in the positions file: ``start_at: end`` applies only on the very first
run (no positions file yet) to files present at the first scan; any file that shows up later, or
while the agent was down, is read from its beginning.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import hashlib
import json
import logging
import os
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logfactory.collect.sources.base import Emit
from logfactory.config import SourceConfig
from logfactory.record import make_record

__all__ = ["FileSource"]

log = logging.getLogger(__name__)

FP_LEN = 256
_FORGET_AFTER_S = 7 * 86400  # positions of files no glob matched for this long are dropped
_Key = tuple[int, int]


@dataclass(slots=True, eq=False)
class _Tail:
    """One followed file. ``rest`` holds unterminated bytes that start at offset ``base``;
    ``emitted`` is the offset just after the last line handed to ``emit``."""

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


def _fingerprint(head: bytes) -> str:
    return hashlib.blake2b(head, digest_size=16).hexdigest()


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
        self.positions_path = Path(data_dir) / "collect" / f"{self.name}.positions.json"
        self.chunk_size = chunk_size
        self.max_line_bytes = config.max_frame_bytes
        self.poll_interval = poll_interval
        self.rescan_interval = rescan_interval
        self.rotate_grace = rotate_grace
        self._tails: dict[_Key, _Tail] = {}
        self._known: dict[_Key, dict[str, Any]] = {}  # persisted but not (yet) seen this run
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
                reads, finished = await loop.run_in_executor(None, self._io_step, rescan)
                for tail, data in reads:
                    if not await self._emit_chunk(tail, data, emit, stop):
                        return
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
        off = t.base
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
                return False
        if len(rest) > limit:
            # no newline in sight: hand on what cannot be held, keep the last partial piece
            keep = len(rest) % limit or limit
            await self._emit_pieces(rest[:-keep], t.base, path, emit)
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

    async def _finish(self, t: _Tail, emit: Emit) -> None:
        """Let go of a file no glob matches any more, once it stopped growing."""
        if t.rest:
            line = t.rest[:-1] if t.rest.endswith(b"\r") else t.rest
            if line:
                meta = {"path": t.path, "offset": t.base}
                await emit(make_record(self.tag, self.hostname, line, meta))
            t.emitted = t.base + len(t.rest)
            t.rest = b""
        self._tails = {k: v for k, v in self._tails.items() if v is not t}
        if t.fd >= 0:
            os.close(t.fd)
            t.fd = -1

    # -- blocking work (thread executor) ---------------------------------------------------
    def _io_step(self, rescan: bool) -> tuple[list[tuple[_Tail, bytes]], list[_Tail]]:
        if rescan:
            self._rescan()
        now = time.monotonic()
        reads: list[tuple[_Tail, bytes]] = []
        finished: list[_Tail] = []
        budget = 4 * self.chunk_size
        for t in list(self._tails.values()):
            try:
                size = os.fstat(t.fd).st_size
            except OSError:
                continue
            if size < t.pos:
                log.info("file source %r: %s was truncated; reading it from the start",
                         self.name, t.path)  # fmt: skip
                t.pos = t.base = t.emitted = 0
                t.rest = b""
                t.head = b""
            if size > t.pos and budget > 0:
                try:
                    data = os.pread(t.fd, min(self.chunk_size, size - t.pos), t.pos)
                except OSError as exc:
                    log.warning("file source %r: cannot read %s: %s", self.name, t.path, exc)
                    continue
                if len(t.head) < FP_LEN:
                    t.head = os.pread(t.fd, FP_LEN, 0)
                if data:
                    t.pos += len(data)
                    budget -= len(data)
                    reads.append((t, data))
            elif (
                size == t.pos
                and t.gone_since is not None
                and now - t.gone_since >= (self.rotate_grace)
            ):
                finished.append(t)
        return reads, finished

    def _rescan(self) -> None:
        found: dict[_Key, str] = {}
        for pattern in self.patterns:
            for path in sorted(glob.glob(pattern)):
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
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != key:  # replaced between stat and open: next scan
            os.close(fd)
            return None
        self._unreadable.discard(path)
        head = os.pread(fd, FP_LEN, 0)
        start = 0
        saved = self._known.get(key)
        if saved is not None:
            fp_len = int(saved.get("fp_len", 0))
            offset = int(saved.get("offset", 0))
            same = len(head) >= fp_len and _fingerprint(head[:fp_len]) == saved.get("fp")
            if same and st.st_size >= offset:
                start = offset
            else:
                log.info("file source %r: %s is not the file we read before (new content or "
                         "truncated); reading it from the start", self.name, path)  # fmt: skip
        elif self._first_scan and not self._had_positions and self.start_at == "end":
            start = st.st_size
        return _Tail(path, fd, key[0], key[1], head, start, start, start)

    # -- positions -------------------------------------------------------------------------
    def _load_positions(self) -> None:
        try:
            raw = self.positions_path.read_bytes()
        except FileNotFoundError:
            return
        self._had_positions = True
        try:
            doc = json.loads(raw)
            entries = doc["files"]
            for e in entries:
                self._known[(int(e["dev"]), int(e["ino"]))] = dict(e)
        except (ValueError, KeyError, TypeError) as exc:
            # a damaged file must not stop collection; re-reading beats skipping
            log.error("file source %r: ignoring unreadable %s (%s); files are read from the "
                      "start", self.name, self.positions_path, exc)  # fmt: skip
            self._known.clear()

    def checkpoint(self) -> object:
        """Positions of all lines emitted so far; durable only after the agent's flush."""
        known = self._known  # read before _tails: see _rescan
        tails = [(t.path, t.dev, t.ino, t.head, t.emitted) for t in self._tails.values()]
        return tails, known

    async def commit(self, token: object) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._write_positions, token)

    def _write_positions(self, token: object) -> None:
        with self._write_lock:  # one writer of the tmp file at a time
            self._write_positions_locked(token)

    def _write_positions_locked(self, token: object) -> None:
        assert isinstance(token, tuple)
        tails, known = token
        day = int(time.time() // 86400 * 86400)
        files: list[dict[str, Any]] = []
        for path, dev, ino, head, offset in tails:
            fp_len = min(len(head), FP_LEN)
            files.append(
                {"path": path, "dev": dev, "ino": ino, "fp_len": fp_len,
                 "fp": _fingerprint(head[:fp_len]), "offset": offset, "seen": day}
            )  # fmt: skip
        live = {(f["dev"], f["ino"]) for f in files}
        for key, e in known.items():
            if key not in live and day - int(e.get("seen", day)) < _FORGET_AFTER_S:
                files.append(e)
        data = json.dumps({"version": 1, "files": files}, indent=1).encode()
        if data == self._last_written:
            return
        self.positions_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.positions_path.with_name(self.positions_path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.positions_path)
        dir_fd = os.open(self.positions_path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._last_written = data
