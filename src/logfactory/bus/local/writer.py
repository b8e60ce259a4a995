"""The embedded bus's producer with its SQLite appends in a child process.

Why: a collector is one Python process, and with :class:`~logfactory.bus.local.LocalProducer`
its source, its emit loop and the SQLite appends share one GIL, so it can never use more than
one core. :class:`OffloadProducer` keeps only the cheap part in the caller's process - resolving
the topic (topics are created here, never in the child) and queueing the message - and ships
batches to ``python -m logfactory.bus.local.writer_process``, which appends them with the same
append path (:class:`~logfactory.bus.local.append.Appender`) as the in-process producer.

Protocol (:mod:`~logfactory.bus.local.wire`, shared with the child,
:mod:`~logfactory.bus.local.writer_process`; parent and child always come from the same
installation):

* parent -> child, on the child's stdin: frames of ``<u32 payload length><u32 count>`` then a
  msgpack array of ``[topic, key, value]``, in produce order;
* child -> parent, on the child's stdout: ``<i64 n>`` with ``n >= 0`` = messages durably
  appended so far (cumulative; ``0`` first, once the database is open), or ``n == -1``
  followed by ``<u32 length>`` and UTF-8 text: the child failed and is exiting.

Guarantees: per-topic/partition order is produce order (one writer, frames in order), nothing is
written twice (a transaction that met a busy database rolled back before it is retried), and
``flush`` returns only once the child acknowledged everything produced before it. When the child
dies or a write fails, every later ``produce``/``flush``/``close`` raises :class:`BusError` with
the exit status and the child's own explanation. The child lives exactly as long as its input:
it ignores SIGINT/SIGTERM (the parent shuts it down by closing the pipe after its last frame),
and when the parent dies it writes every frame it fully received, then exits.

Do not ``fork`` a process that holds an open producer: the copy keeps the child's input open.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import signal
import site
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import msgspec

from logfactory.bus.base import BusError
from logfactory.bus.local.db import Entry, as_bytes
from logfactory.bus.local.wire import ACK, FAILED, HEADER, LEN, write_all

__all__ = ["OffloadProducer", "WriterSite"]


class WriterSite(Protocol):
    """What an offloading producer needs of its bus: where it is, and topic names."""

    @property
    def directory(self) -> Path: ...

    @property
    def fsync(self) -> bool: ...

    def topic_info(self, name: str) -> tuple[int, int]: ...


_PIPE_BYTES = 1 << 20  # a bigger pipe: fewer wake-ups on both sides when Linux allows it
_START_TIMEOUT_S = 60.0
_BYTES = frozenset({bytes})
_KEY_TYPES = frozenset({bytes, type(None)})


def _grow_pipe(fd: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)  # type: ignore[attr-defined,unused-ignore]


def _child_env() -> dict[str, str]:
    """Our environment, plus the directory this package was imported from when that is not a
    site directory (a source checkout): the child must run the very same code. A site
    directory is never added, as it would shadow the standard library."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[3])  # src/, above logfactory/bus/local/
    sites = {str(Path(d).resolve()) for d in [*site.getsitepackages(), site.getusersitepackages()]}
    if root not in sites:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


class OffloadProducer:
    """A :class:`~logfactory.bus.base.Producer` whose SQLite appends run in a child process.

    ``produce`` blocks (backpressure) while ``max_buffered`` messages are unacknowledged, i.e.
    queued here, in the pipe or not yet committed by the child. ``pending()`` is that count.
    """

    FRAME_MESSAGES = 4096  # the child starts on a frame while the next one is being sent

    def __init__(self, bus: WriterSite, *, max_buffered: int = 100_000) -> None:
        self._bus = bus
        self._max = max_buffered
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._queue: list[Entry] = []
        self._produced = 0
        self._acked = -1  # becomes 0 when the child says it is ready
        self._room = max_buffered  # produce blocks once _produced reaches this (acked + max)
        self._error: BusError | None = None
        self._closing = False
        self._usable = True  # neither failed nor closing: the one check produce() makes
        self._topics: set[str] = set()  # resolved already (topics are never deleted)
        self._closed = False
        # the child's own diagnostics, for errors; closed by close()/_abort()
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        env = _child_env()
        args = [sys.executable, "-m", "logfactory.bus.local.writer_process", str(bus.directory)]
        if bus.fsync:
            args.append("--fsync")
        try:
            self._proc = subprocess.Popen(
                args,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                bufsize=0,
                env=env,
                process_group=0,  # a terminal's Ctrl-C goes to the parent, which flushes
            )
        except BaseException:
            self._stderr.close()
            raise
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        self._in = self._proc.stdin
        self._out = self._proc.stdout
        _grow_pipe(self._in.fileno())
        self._reader = threading.Thread(target=self._read_acks, name="local-writer-acks")
        self._sender = threading.Thread(target=self._send, name="local-writer-send")
        self._reader.daemon = self._sender.daemon = True
        self._reader.start()
        self._sender.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        with self._cond:
            while self._acked < 0 and self._error is None and time.monotonic() < deadline:
                self._cond.wait(0.5)
            failed = self._error if self._acked < 0 else None
        if failed is not None or self._acked < 0:
            self._abort()
            raise failed or BusError(f"local bus writer did not start in {_START_TIMEOUT_S}s")

    # -- the Producer contract ----------------------------------------------------------------
    def produce(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        if type(value) is not bytes or (key is not None and type(key) is not bytes):
            value, key = as_bytes(value, key)
        self._enqueue(topic, ((topic, key, value),), 1)

    def produce_many(
        self, topic: str, values: Sequence[bytes], keys: Sequence[bytes | None]
    ) -> None:
        """``produce(topic, value, key)`` for each value and key in step, taking the lock once:
        a collector hands a file chunk's lines over in one call. Waits for room once, before
        the run (so the backlog may pass ``max_buffered`` by one run)."""
        if len(values) != len(keys):
            raise ValueError(f"{len(values)} values but {len(keys)} keys")
        if not set(map(type, values)) <= _BYTES or not set(map(type, keys)) <= _KEY_TYPES:
            pairs = [as_bytes(v, k) for v, k in zip(values, keys, strict=True)]
            values, keys = [v for v, _k in pairs], [k for _v, k in pairs]
        self._enqueue(topic, zip(itertools.repeat(topic), keys, values), len(values))

    def _enqueue(self, topic: str, entries: Iterable[Entry], count: int) -> None:
        """Queue ``count`` entries for the sender under one lock, waiting for room first."""
        if topic not in self._topics:
            self._bus.topic_info(topic)  # creates a missing topic here: the child never does
            self._topics.add(topic)
        with self._lock:
            if not self._usable:
                self._raise_unusable()
            if self._produced >= self._room:
                self._wait_for_room()
            queue = self._queue
            was_empty = not queue
            queue += entries
            self._produced += count
            if was_empty and queue:  # the sender may be asleep on an empty queue
                self._cond.notify_all()

    @property
    def writer_pid(self) -> int:
        """The child process doing the appends (for operators and tests)."""
        return self._proc.pid

    def pending(self) -> int:
        """Messages produced but not yet acknowledged by the child (the collector's backlog)."""
        with self._lock:
            return self._produced - self._acked

    def flush(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._produced
            while self._acked < target:
                if self._error is not None:
                    self._raise_unusable()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise BusError(f"flush timed out with {target - self._acked} unwritten")
                self._cond.wait(min(remaining, 0.5) if remaining is not None else 0.5)

    def close(self) -> None:
        """Send everything still queued, wait for the child to write it and exit; raise if any
        message was not written."""
        if self._closed:
            return
        self._stop_threads()
        with self._cond:
            if self._error is not None:
                raise self._error
            if self._acked != self._produced:  # pragma: no cover - a protocol bug
                raise BusError(
                    f"local bus writer exited cleanly but acknowledged {self._acked} of "
                    f"{self._produced} message(s)"
                )

    # -- internals ------------------------------------------------------------------------------
    def _wait_for_room(self) -> None:
        """Called with the lock held: block until the child caught up (or failed)."""
        while self._produced >= self._room:
            if not self._usable:
                self._raise_unusable()
            self._cond.wait(0.5)

    def _raise_unusable(self) -> None:
        if self._error is not None:
            raise self._error
        raise BusError("producer is closed")

    def _fail(self, what: str) -> None:
        """Called with the lock held: make every later call raise ``what``."""
        self._usable = False
        if self._error is None:
            lost = self._produced - max(self._acked, 0)
            self._error = BusError(f"{what}; {lost} message(s) not written")
        self._cond.notify_all()

    def _send(self) -> None:
        encoder = msgspec.msgpack.Encoder()
        frame = bytearray(HEADER.size)
        fd = self._in.fileno()
        size = self.FRAME_MESSAGES
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._closing and self._error is None:
                        self._cond.wait()
                    if self._error is not None:
                        return
                    batch, self._queue = self._queue, []
                if not batch:
                    return  # closing, and everything was sent
                for start in range(0, len(batch), size):
                    chunk = batch[start : start + size] if len(batch) > size else batch
                    encoder.encode_into(chunk, frame, HEADER.size)
                    HEADER.pack_into(frame, 0, len(frame) - HEADER.size, len(chunk))
                    write_all(fd, frame)
        except OSError:
            return  # the child is gone: the ack reader reports how it ended
        finally:
            with contextlib.suppress(OSError):
                self._in.close()  # EOF: the child writes what it has, then exits

    def _read_acks(self) -> None:
        fd = self._out.fileno()
        buf = b""
        child_error: str | None = None
        try:
            while child_error is None:
                data = os.read(fd, 65536)
                if not data:
                    break
                buf += data
                acked = None
                while len(buf) >= ACK.size:
                    (n,) = ACK.unpack_from(buf)
                    if n != FAILED:
                        acked, buf = n, buf[ACK.size :]
                        continue
                    start = ACK.size + LEN.size
                    if len(buf) >= start:
                        end = start + LEN.unpack_from(buf, ACK.size)[0]
                        if len(buf) >= end:
                            child_error = buf[start:end].decode("utf-8", "replace")
                    break
                if acked is not None:
                    with self._cond:
                        self._acked = acked
                        self._room = acked + self._max
                        self._cond.notify_all()
        except OSError as exc:
            child_error = f"reading its acknowledgements failed: {exc}"
        finally:
            self._out.close()
        code = self._proc.wait()
        with self._cond:
            clean = self._closing and code == 0 and child_error is None
            if not clean:
                self._fail(self._describe_exit(code, child_error))
            self._cond.notify_all()

    def _describe_exit(self, code: int, child_error: str | None) -> str:
        how = f"exited with code {code}"
        if code < 0:
            try:
                how = f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"was killed by signal {-code}"
        what = f"local bus writer process {self._proc.pid} {how}"
        if child_error:
            return f"{what}: {child_error}"
        with contextlib.suppress(OSError, ValueError):
            self._stderr.seek(0)
            tail = self._stderr.read()[-2000:].decode("utf-8", "replace").strip()
            if tail:
                return f"{what}: {tail}"
        return what

    def _abort(self) -> None:
        """Constructor failure: stop the child and the threads, release everything."""
        if self._proc.poll() is None:
            self._proc.kill()
        self._stop_threads()

    def _stop_threads(self) -> None:
        """The sender sends what is queued and closes the child's input; the reader then sees
        the child's last ack and its exit."""
        with self._cond:
            self._closing = True
            self._usable = False
            self._cond.notify_all()
        self._sender.join()
        self._reader.join()
        self._closed = True
        self._stderr.close()
