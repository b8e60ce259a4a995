"""How SSE streams read the bus without taking the node with them.

Measured before this module (issue 13): 64 streams reading a backlog, each polling in a thread
of its own, raised the p99 of an HTTP ingest request from 10 ms to 300 ms - 65 threads taking
turns at the interpreter - and every stream kept a thread busy even when idle. Now:

* **Reads share one thread, half of the time** (:class:`ReadGate`): every stream's reads go
  through :data:`READ_WORKERS` threads, one read per stream at a time and in turn (a FIFO
  semaphore), each busy at most :data:`READ_SHARE` of the time. On the reference machine 64
  streams together read some 45,000 events/s of 1 KB with the ingest p99 within 10% of the
  p99 without them (two threads full time: 3x as fast, and the p99 3 to 5 times higher).
  The event loop (ingest, health) competes with one thread, not one per stream.
* **A read never waits for data.** A stream that found nothing waits on the event loop until
  one of its topics changes (:class:`LocalWatch`: one thread for the whole node watches the
  embedded bus; :class:`TickWatch` for other buses: a short tick), so an idle stream costs no
  thread and no CPU. A stream re-reads at least every :data:`RECHECK_S` whatever the watch
  says, so a watch that fails delays events, it never stalls a stream.
* **A read is short and small**: at most ``max_records`` messages and about
  :data:`BATCH_BYTES` of them (see ``EventReader.want``), so one read holds the interpreter for
  well under a millisecond and a stream's buffers stay well under a megabyte (256 KiB reads
  took the ingest p99 up by 25-45%).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

from logfactory.bus.base import Bus, HeadReader, HeadWatch

__all__ = [
    "BATCH_BYTES",
    "READ_SHARE",
    "READ_WORKERS",
    "RECHECK_S",
    "BusWatch",
    "LocalWatch",
    "ReadGate",
    "TickWatch",
    "watch_for",
]

log = logging.getLogger(__name__)

READ_WORKERS = 1
READ_SHARE = 0.5
BATCH_BYTES = 64 * 1024
RECHECK_S = 1.0
WATCH_INTERVAL_S = 0.005
IDLE_STOP_S = 5.0
RETRY_S = 10.0
TICK_S = 0.1

T = TypeVar("T")


class ReadGate:
    """Runs the streams' reads on ``workers`` threads, one at a time per caller, in turn, and
    each thread busy at most ``share`` of the time: after a read of d seconds its turn is held
    for d * (1 / share - 1) more, during which the event loop and the rest of the node have
    the interpreter to themselves."""

    def __init__(self, workers: int = READ_WORKERS, share: float = READ_SHARE) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sse-read")
        self._turn = asyncio.Semaphore(workers)
        self._rest = 1 / share - 1

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        async with self._turn:
            t0 = time.perf_counter()
            out = await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
            if self._rest:
                await asyncio.sleep((time.perf_counter() - t0) * self._rest)
            return out


class BusWatch(Protocol):
    """Tells a stream that found nothing when to read again."""

    def version(self, topics: Sequence[str]) -> int:
        """A number that moves when any of ``topics`` may have new messages (event loop only)."""
        ...

    async def wait(self, topics: Sequence[str], seen: int, timeout: float) -> None:
        """Return when ``version(topics)`` is no longer ``seen``, or after ``timeout``."""
        ...

    def close(self) -> None: ...


class TickWatch:
    """For buses that cannot be watched cheaply: read again after a short tick."""

    def version(self, topics: Sequence[str]) -> int:
        return 0

    async def wait(self, topics: Sequence[str], seen: int, timeout: float) -> None:
        await asyncio.sleep(max(0.0, min(timeout, TICK_S)))

    def close(self) -> None:
        return None


class LocalWatch:
    """One thread watches the embedded bus for every stream of the node.

    It asks SQLite every :data:`WATCH_INTERVAL_S` whether anything was committed (``PRAGMA
    data_version``, no I/O) and, when something was, which topics' heads moved; only the
    streams of those topics are woken. The thread and its (lean) connection exist only while
    streams wait, and :data:`IDLE_STOP_S` after the last one.
    """

    def __init__(self, bus: HeadWatch) -> None:
        self._bus = bus
        self._gens: dict[str, int] = {}
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._waiting = 0
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failed_at = -RETRY_S
        # the heads last seen, kept across restarts of the thread: topics that moved while it
        # was stopped wake their streams; the very first look wakes every stream once
        self._heads: dict[str, int] | None = None

    def version(self, topics: Sequence[str]) -> int:
        return sum(self._gens.get(t, 0) for t in topics)

    async def wait(self, topics: Sequence[str], seen: int, timeout: float) -> None:
        if self.version(topics) != seen or timeout <= 0:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for t in topics:
            self._waiters.setdefault(t, set()).add(fut)
        self._waiting += 1
        self._start()
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            pass
        finally:
            self._waiting -= 1
            for t in topics:
                waiters = self._waiters.get(t)
                if waiters is not None:
                    waiters.discard(fut)
                    if not waiters:
                        del self._waiters[t]

    def _start(self) -> None:
        with self._lock:
            retry = time.monotonic() - self._failed_at >= RETRY_S
            if self._thread is None and not self._closed and retry:
                self._loop = asyncio.get_running_loop()
                self._thread = threading.Thread(target=self._run, name="sse-watch", daemon=True)
                self._thread.start()
        self._wake.set()

    def _changed(self, topics: list[str]) -> None:
        """On the event loop: the heads of ``topics`` moved."""
        for t in topics:
            self._gens[t] = self._gens.get(t, 0) + 1
            for fut in self._waiters.pop(t, ()):
                if not fut.done():
                    fut.set_result(None)

    def _run(self) -> None:
        db: HeadReader | None = None
        try:
            db = self._bus.head_reader()
            self._watch(db)
        except Exception as exc:  # streams fall back on RECHECK_S meanwhile
            with self._lock:
                self._thread = None
                self._failed_at = time.monotonic()
            log.warning(
                "SSE bus watch stopped: %s: %s (streams re-read every %g s; retried in %g s)",
                type(exc).__name__, exc, RECHECK_S, RETRY_S,
            )  # fmt: skip
        finally:
            if db is not None:
                db.close()

    def _watch(self, db: HeadReader) -> None:
        """Watch while streams wait; return (forgotten as the thread) once none has waited
        for IDLE_STOP_S, or when closed."""
        last_version: int | None = None  # the version is per connection: query the heads once
        idle_since = time.monotonic()
        while not self._closed:
            if not self._waiting:
                self._wake.wait(WATCH_INTERVAL_S * 20)
                self._wake.clear()
                if self._waiting:
                    continue
                with self._lock:
                    if time.monotonic() - idle_since >= IDLE_STOP_S and not self._waiting:
                        self._thread = None
                        return
                continue
            idle_since = time.monotonic()
            version = db.data_version()
            if version != last_version:
                heads = db.heads()
                last = self._heads
                moved = [t for t, n in heads.items() if last is None or last.get(t) != n]
                last_version, self._heads = version, heads
                if moved and self._loop is not None:
                    self._loop.call_soon_threadsafe(self._changed, moved)
            time.sleep(WATCH_INTERVAL_S)
        with self._lock:
            self._thread = None

    def close(self) -> None:
        self._closed = True
        self._wake.set()


def watch_for(bus: Bus) -> BusWatch:
    """The cheapest watch ``bus`` allows."""
    return LocalWatch(bus) if isinstance(bus, HeadWatch) else TickWatch()
