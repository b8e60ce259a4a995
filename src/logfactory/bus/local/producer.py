"""The embedded bus's producer: a batched background writer (see :mod:`logfactory.bus.local`)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Protocol

from logfactory.bus.base import BusError
from logfactory.bus.local.append import Appender
from logfactory.bus.local.db import Db, Entry, as_bytes

__all__ = ["LocalProducer", "ProducerSite"]


class ProducerSite(Protocol):
    """What a producer needs of its bus: the database, topic names, and the append path."""

    @property
    def path(self) -> Path: ...

    @property
    def fsync(self) -> bool: ...

    @property
    def appender(self) -> Appender: ...

    def topic_info(self, name: str) -> tuple[int, int]: ...


class LocalProducer:
    """Buffers messages and writes them in batches from one background thread.

    Batching is what makes the embedded bus fast: one SQLite transaction per batch instead of
    per message. ``produce`` blocks (backpressure) once ``max_buffered`` messages are waiting.
    A batch that meets a busy database is retried (it was rolled back, so no duplicates); any
    other failure is kept and raised by every later call.
    """

    def __init__(self, bus: ProducerSite, *, max_buffered: int = 100_000) -> None:
        self._bus = bus
        self._appender = bus.appender
        self._db = Db(bus.path, bus.fsync)
        self._max = max_buffered
        self._cond = threading.Condition()
        self._queue: list[Entry] = []
        self._queued = 0
        self._written = 0
        self._error: BaseException | None = None
        self._closing = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="local-bus-producer", daemon=True)
        self._thread.start()

    def produce(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        if type(value) is not bytes or (key is not None and type(key) is not bytes):
            value, key = as_bytes(value, key)
        self._bus.topic_info(topic)
        with self._cond:
            while len(self._queue) >= self._max and self._error is None and not self._closing:
                self._cond.wait(0.1)
            self._raise_if_failed()
            if self._closing:
                raise BusError("producer is closed")
            self._queue.append((topic, key, value))
            self._queued += 1
            if len(self._queue) == 1:  # the writer may be asleep on an empty queue
                self._cond.notify_all()

    def pending(self) -> int:
        """Messages produced but not yet written (the backlog a collector watches)."""
        with self._cond:
            return self._queued - self._written

    def flush(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._queued
            while self._written < target:
                self._raise_if_failed()
                if not self._thread.is_alive():
                    raise BusError("producer writer thread is gone")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise BusError(f"flush timed out with {target - self._written} unwritten")
                self._cond.wait(min(remaining, 0.5) if remaining is not None else 0.5)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            lost = self._queued - self._written
            raise BusError(
                f"local bus write failed, {lost} message(s) not written: {self._error!r}"
            ) from self._error

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                batch, self._queue = self._queue, []
                self._cond.notify_all()
            try:
                self._write(batch)
            except BaseException as exc:  # surfaced to produce()/flush()/close() callers
                with self._cond:
                    self._error = exc
                    self._cond.notify_all()
                return
            with self._cond:
                self._written += len(batch)
                self._cond.notify_all()

    def _write(self, batch: list[Entry]) -> None:
        self._appender.append_retrying(self._db, batch)

    def close(self) -> None:
        """Write everything still queued, then release the connection."""
        if self._closed:
            return
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join()
        self._closed = True
        self._db.close()
        with self._cond:
            self._raise_if_failed()
