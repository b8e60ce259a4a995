"""The collector's disk spool: keep accepting while the bus is down, resend when it returns.

:class:`SpoolingProducer` wraps the collector's bus producer and has two modes.

* **direct** (normal): ``produce`` hands each message to the inner producer, keeping a reference
  to it until a ``flush`` confirms it. ``flush`` (the agent's checkpoint) waits at most
  ``flush_timeout`` for the inner producer.
* **spooling**: entered when that bounded flush raises :class:`BusError` (brokers unreachable),
  when the inner ``produce`` raises, or when too many messages wait for a confirmation
  (``max_unconfirmed``: beyond it ``produce`` would soon block on a full librdkafka queue).
  Every later message is appended to the spool file (:mod:`.spool_store`); appends are
  buffered and written in one transaction per batch, by a writer thread once ``write_batch``
  are waiting and by every ``flush``. A
  ``flush`` that returns therefore means "on the bus or on the spool's disk", so the agent's
  checkpoint may commit file positions.

The messages that were unconfirmed at the switch are still in the inner producer, which is
patient (``Bus.producer(patient=True)``: it retries forever). They are also written to the
spool, first, so a crash during the outage loses nothing. A drain thread waits until an inner
``flush`` succeeds - the bus is back and those old messages are delivered, which is what keeps
per-host order - deletes their copies, then resends the spool in ``seq`` order: a batch is
produced once, flushed until delivered (never produced again: the patient producer gets it
there), then deleted. When the disk and the buffer are both empty (checked under the lock that
``produce`` takes) the mode is direct again. Messages leave in the order they were accepted.

Guarantees: nothing accepted is lost - on a crash or a stop during the outage everything not
confirmed by the bus is on disk, and a spool found non-empty at start is drained first. The
price is **at-least-once** around failures: a crash between a delivery and the delete of its
rows (or a stop before the copies of in-flight messages were known to be delivered) re-sends
those rows at the next start. Event ids are derived from input positions, so subscribers can
de-duplicate. ``max_bytes`` never drops anything either: above it :meth:`pending` reports a huge
backlog, which makes the agent slow its sources down (and one error is logged).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

from logfactory.bus.base import Backlog, BusError, Producer
from logfactory.collect.spool_health import SpoolHealth
from logfactory.collect.spool_store import Row, SpoolStore
from logfactory.stats import StatsRegistry

__all__ = ["OVER_LIMIT_BACKLOG", "SpoolingProducer"]

log = logging.getLogger(__name__)

#: added to :meth:`SpoolingProducer.pending` while the spool is over ``max_bytes``: above any
#: backlog mark, so the agent holds its sources back
OVER_LIMIT_BACKLOG = 1 << 30

_Msg = tuple[str, bytes | None, bytes]


class SpoolingProducer:
    """A :class:`~logfactory.bus.base.Producer` that spools to ``path`` while the bus is down.

    Thread-safe. Lock order: ``_flushing`` (one :meth:`flush` at a time), then ``_io`` (the
    database, and the order of its writes), then ``_lock`` (the in-memory state); ``produce``
    only ever takes ``_lock``.
    """

    def __init__(
        self,
        inner: Producer,
        path: str | Path,
        *,
        registry: StatsRegistry | None = None,
        max_bytes: int = 1 << 30,
        flush_timeout: float = 2.0,
        write_batch: int = 1000,
        drain_batch: int = 5000,
        max_unconfirmed: int = 250_000,
        retry_interval: float = 0.5,
        close_inner: bool = True,
    ) -> None:
        self.path = Path(path)
        self._inner = inner
        self._inner_produce = inner.produce
        self._inner_pending = inner.pending if isinstance(inner, Backlog) else None
        self._registry = registry
        self._max_bytes = max_bytes
        self._flush_timeout = flush_timeout
        self._write_batch = write_batch
        self._drain_batch = drain_batch
        self._max_unconfirmed = max_unconfirmed
        self._retry = retry_interval
        self._close_inner = close_inner
        self._lock = threading.Lock()
        self._wake_writer = threading.Condition(self._lock)
        self._wake_drain = threading.Condition(self._lock)
        self._io = threading.Lock()
        # Two flushes at once (a checkpoint and an HTTP request) would each forget the
        # unconfirmed messages up to their own mark, counted in a list the other shortened:
        # the later one would then forget messages the bus had not confirmed yet.
        self._flushing = threading.Lock()
        self._stop = threading.Event()
        self._closed = False
        self._direct = True
        self._epoch = 0  # changes at every mode switch
        self._unconfirmed: list[_Msg] = []  # direct mode: handed over, not yet confirmed
        # direct mode's budget of unconfirmed messages, 0 while spooling or closed; a message
        # costs one unit plus one per 2 KiB, so the default stays under librdkafka's queue limits
        # (1M messages for a patient producer, 1 GiB)
        self._room = max_unconfirmed
        self._buf: list[Row] = []  # spooling: accepted, not yet on disk (newest seqs)
        self._seq = 1
        self._records = 0  # in the spool: on disk + in the buffer
        self._bytes = 0
        self._accepted = 0  # spooled since the last report to the registry
        self._in_inner_upto: int | None = None  # rows <= this are also in the inner producer
        self._health = SpoolHealth(self.path, registry)  # error/since guarded by _lock
        self._over_logged = False
        self._store = SpoolStore(self.path, registry)  # guarded by _io
        if self.path.exists():
            self._recover()
        self._threads = [
            threading.Thread(target=self._writer, name="spool-writer", daemon=True),
            threading.Thread(target=self._drainer, name="spool-drain", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        self._publish()

    # -- the Producer protocol ---------------------------------------------------------------
    def produce(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        with self._lock:
            if self._room > 0:  # direct, open and within budget: the hot path
                try:
                    self._inner_produce(topic, value, key)
                except BusError as exc:
                    self._to_spooling(f"produce failed: {exc}")
                else:
                    self._unconfirmed.append((topic, key, value))
                    self._room -= 1 + (len(value) >> 11)
                    return
            elif self._closed:
                raise BusError(f"spool {self.path} is closed")
            elif self._direct:
                n = len(self._unconfirmed)
                self._to_spooling(f"{n} messages wait for the bus to confirm them")
            self._append(topic, key, value)
            self._accepted += 1

    def flush(self, timeout: float | None = None) -> None:
        """Everything produced before the call is on the bus or on the spool's disk.

        Waits for the bus at most ``flush_timeout`` (or ``timeout``, if shorter); if the bus
        does not confirm in time, switches to spooling and writes to disk instead. Raises
        :class:`BusError` only if the disk write fails.
        """
        bound = self._flush_timeout if timeout is None else min(timeout, self._flush_timeout)
        with self._flushing:
            self._flush(bound)

    def _flush(self, bound: float) -> None:
        with self._lock:
            if self._closed:
                raise BusError(f"spool {self.path} is closed")
            direct, epoch = self._direct, self._epoch
            mark, used = len(self._unconfirmed), self._max_unconfirmed - self._room
        if direct:
            try:
                self._inner.flush(timeout=bound)
            except BusError as exc:
                with self._lock:
                    if self._direct:
                        self._to_spooling(str(exc))
            else:
                with self._lock:
                    if self._epoch == epoch:  # still the same direct stretch
                        del self._unconfirmed[:mark]
                        self._room += used
                return
        self._write_buffer()

    def pending(self) -> int:
        """The backlog the agent's backpressure watches: the inner producer's while direct,
        the unwritten buffer while spooling, plus :data:`OVER_LIMIT_BACKLOG` over ``max_bytes``."""
        if self._direct:
            return int(self._inner_pending()) if self._inner_pending is not None else 0
        with self._lock:
            n = len(self._buf)
            return n + OVER_LIMIT_BACKLOG if self._bytes > self._max_bytes else n

    def close(self) -> None:
        """Stop the threads; what the bus has not confirmed goes to disk; close the inner
        producer if this wrapper owns it (``close_inner``). Raises if the disk write fails."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._room = 0
            self._stop.set()
            self._wake_writer.notify_all()
            self._wake_drain.notify_all()
        for thread in self._threads:
            thread.join()
        try:
            with self._flushing:  # a flush still running finishes first
                self._close_flush()
        finally:
            with self._io:
                self._store.close()
            if self._close_inner:
                try:
                    self._inner.close()
                except BusError as exc:  # what it could not deliver is on the spool
                    log.warning("closing the bus producer: %s (kept in %s)", exc, self.path)

    def _close_flush(self) -> None:
        """What the bus has not confirmed at close goes to disk."""
        try:
            self._inner.flush(timeout=self._flush_timeout)
        except BusError as exc:
            with self._lock:
                if self._direct:
                    self._to_spooling(f"at close: {exc}")
        else:
            self._forget_delivered()
        self._write_buffer()

    # -- health ------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """For health and stats: ``mode``, spooled ``records``/``bytes``, ``max_bytes``, the
        last bus ``error`` and ``since`` (epoch seconds) while spooling, and the ``path``."""
        with self._lock:
            return {
                "mode": "direct" if self._direct else "spooling",
                "records": self._records,
                "bytes": self._bytes,
                "max_bytes": self._max_bytes,
                "error": self._health.error,
                "since": self._health.since,
                "path": str(self.path),
            }

    # -- mode switches (callers hold _lock) ----------------------------------------------------
    def _append(self, topic: str, key: bytes | None, value: bytes) -> None:
        seq = self._seq
        self._seq = seq + 1
        self._buf.append((seq, topic, key, value))
        self._records += 1
        self._bytes += len(value) + (len(key) if key else 0)
        if len(self._buf) == self._write_batch:
            self._wake_writer.notify()
        if self._bytes > self._max_bytes and not self._over_logged:
            self._over_logged = True
            log.error(
                "spool %s is over its limit (%d bytes): slowing the sources down until the bus "
                "returns (nothing is dropped)", self.path, self._max_bytes,
            )  # fmt: skip

    def _to_spooling(self, reason: str) -> None:
        self._direct = False
        self._epoch += 1
        if self._unconfirmed:  # still in the inner producer: keep copies, ahead of the rest
            for topic, key, value in self._unconfirmed:
                self._append(topic, key, value)
            self._in_inner_upto = self._seq - 1
            self._unconfirmed = []
        self._room = 0
        self._health.outage(reason)
        log.warning("bus not taking records (%s): spooling to %s", reason, self.path)
        self._wake_drain.notify()

    def _to_direct(self) -> None:
        self._direct = True
        self._room = self._max_unconfirmed
        self._epoch += 1
        self._over_logged = False
        self._health.recovered()
        log.warning("bus is back: spool %s drained, producing directly again", self.path)

    # -- the database ----------------------------------------------------------------------
    def _recover(self) -> None:
        """A previous run left rows: start spooling, so they are resent before anything new
        (a damaged file is moved aside by the store instead)."""
        found = self._store.recover()
        if found is None:
            return
        count, size, last = found
        self._direct, self._room = False, 0
        self._records, self._bytes, self._seq = count, size, last + 1
        self._health.outage(f"{count} records left by a previous run")
        log.warning("spool %s holds %d records from a previous run: resending", self.path, count)

    def _write_buffer(self) -> None:
        with self._io:
            self._write_locked()

    def _write_locked(self) -> None:
        """Move the buffer to disk in one fsynced transaction (callers hold ``_io``)."""
        with self._lock:
            batch, self._buf = self._buf, []
            accepted, self._accepted = self._accepted, 0
        if not batch:
            return
        try:
            self._store.append(batch)
        except BusError:
            with self._lock:  # back in front: the order is kept for the next try
                self._buf[:0] = batch
                self._accepted += accepted
            raise
        self._publish(spooled=accepted)

    def _forget_delivered(self, resent: int = 0) -> None:
        """The inner producer delivered everything it holds: drop the rows it had copies of."""
        with self._io:
            with self._lock:
                upto, self._in_inner_upto = self._in_inner_upto, None
                if upto is None:
                    return
                kept = [row for row in self._buf if row[0] > upto]
                for _seq, _topic, key, value in self._buf[: len(self._buf) - len(kept)]:
                    self._records -= 1
                    self._bytes -= len(value) + (len(key) if key else 0)
                self._buf = kept
            try:
                count, size = self._store.delete_upto(upto)
            except sqlite3.Error as exc:  # the rows stay and are resent: at-least-once
                log.error("cannot delete delivered rows from %s: %s", self.path, exc)
                return
            with self._lock:
                self._records -= count
                self._bytes -= size
        self._publish(resent=resent)

    def _publish(self, spooled: int = 0, resent: int = 0) -> None:
        if self._registry is None:
            return
        with self._lock:
            records, size = self._records, self._bytes
        self._health.publish(records, size, spooled, resent)

    # -- threads -------------------------------------------------------------------------------
    def _writer(self) -> None:
        """Writes the buffer whenever ``write_batch`` messages wait, so memory stays small."""
        while True:
            with self._lock:
                while len(self._buf) < self._write_batch and not self._stop.is_set():
                    self._wake_writer.wait()
                if self._stop.is_set():
                    return  # close() writes the rest
            try:
                self._write_buffer()
            except BusError as exc:  # flush() raises it too; the buffer is kept and retried
                self._health.disk_error(exc)
                if self._stop.wait(self._retry):
                    return

    def _drainer(self) -> None:
        while True:
            with self._lock:
                while self._direct and not self._stop.is_set():
                    self._wake_drain.wait()
            if self._stop.is_set() or not self._wait_delivered():
                return
            self._forget_delivered()
            if not self._resend():
                return

    def _wait_delivered(self) -> bool:
        """Flush the inner producer until it succeeds (True) or we are closing (False)."""
        while True:
            try:
                self._inner.flush(timeout=self._flush_timeout)
                return True
            except BusError as exc:
                with self._lock:
                    self._health.outage(str(exc))
            if self._stop.wait(min(self._retry, self._flush_timeout)):
                return False

    def _resend(self) -> bool:
        """Hand the spool over in ``seq`` order; True once it is empty and the mode direct."""
        while not self._stop.is_set():
            try:
                rows = self._next_batch()
            except BusError as exc:
                self._health.disk_error(exc)
                if self._stop.wait(self._retry):
                    return False
                continue
            if rows is None:
                self._vacuum()
                return True
            for seq, topic, key, value in rows:
                while True:
                    try:
                        self._inner_produce(topic, value, key)
                        break
                    except BusError as exc:
                        with self._lock:
                            self._health.outage(str(exc))
                        if self._stop.wait(self._retry):
                            return False
                with self._lock:
                    self._in_inner_upto = seq
            if not self._wait_delivered():
                return False
            self._forget_delivered(resent=len(rows))
        return False

    def _next_batch(self) -> list[Row] | None:
        """The oldest rows; None once disk and buffer are empty (the mode is then direct)."""
        with self._io:
            while True:
                rows = self._store.oldest(self._drain_batch)
                if rows:
                    return rows
                with self._lock:
                    if not self._buf:
                        self._to_direct()
                        return None
                self._write_locked()

    def _vacuum(self) -> None:
        with self._io:
            self._store.vacuum()
        self._publish()
