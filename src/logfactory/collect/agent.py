"""The collector agent: runs the sources and puts what they collect on ``logs.raw``.

Every source gets an ``emit`` that encodes the Record and produces it keyed by host (so one host's
lines stay in one partition, in order). ``emit`` is where backpressure happens: every
``YIELD_EVERY`` records it yields to the event loop, and when the producer reports a backlog above
``BACKLOG_HIGH`` (``pending()``, which the local bus's producer has) it waits until the backlog is
under ``BACKLOG_LOW``, so a slow bus slows the sources instead of filling memory. Yielding every
few dozen records rather than every record keeps the per-record cost to a few microseconds.

Durability: once a second, and once more at the end, the agent takes each checkpointed source's
``checkpoint()``, flushes the producer, then ``commit``\\ s the snapshot (``sources.base``). Stop
order: sources stop accepting and emit what they accepted, then the producer is flushed and
positions are persisted, so a clean stop loses nothing and re-sends nothing.

Bus outages: with a remote bus (``collector.spool``, see :mod:`logfactory.collect.spool`) the
producer is wrapped in a :class:`SpoolingProducer`, so a checkpoint whose bus does not answer
within ``collector.spool_flush_timeout`` writes to the disk spool instead, the positions are
committed, and the sources keep going; the spool is resent in order when the bus returns.
:attr:`Agent.spool` exposes its ``state()`` for health pages.

A source that fails (a port already in use, a bug) stops the whole agent cleanly and the error
is re-raised from :meth:`Agent.run`: a collector that silently lost an input is worse than one
that refuses to run. :attr:`Agent.failed_source` says which one, so the node can name its
configuration line.

A source that runs but reads nothing (a file source whose globs match no file yet: its
``idle_reason``) is reported once a second on the health page, until it reads something: as a
warning (``StatsRegistry.warning``, the node stays healthy) while another source can bring
records in, as a problem (503) when none can, since the node then collects nothing at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from logfactory.bus.base import Backlog, BatchProducer, BusError, Producer
from logfactory.collect.sources.base import Checkpointed, Emit, Lagging, Reconciling, Source
from logfactory.collect.sources.build import AGENT_TYPES, build_source
from logfactory.collect.sources.context import SourceContext
from logfactory.collect.sources.file_reconcile import RawLog
from logfactory.collect.spool import SpoolingProducer
from logfactory.config import Config, SourceConfig
from logfactory.record import Record, encode_record, encode_records, now_ns
from logfactory.stats import StatsRegistry
from logfactory.topics import RAW

__all__ = ["RAW_TOPIC", "Agent", "spool_path", "spools"]

log = logging.getLogger(__name__)


def spools(config: Config) -> bool:
    """Whether a collector of ``config`` puts what the bus does not take into a disk spool
    (``collector.spool``: always, or auto on a bus that can be away — any but the local one)."""
    mode = config.collector.spool
    return mode == "always" or (mode == "auto" and config.bus.type != "local")


def spool_path(config: Config, name: str = "collector") -> Path:
    """The spool file of the collector process ``name``."""
    return config.data_dir / "spool" / f"{name}.db"


RAW_TOPIC = RAW
YIELD_EVERY = 64
# a wide gap between the two keeps the bus writer fed while the sources wait: with 20,000/5,000
# the writer of the embedded bus ran dry and the file tail measured 165,000 lines/s (both
# processes ~70% busy), with 60,000/30,000 it measured 207,000-224,000 (~85%)
BACKLOG_HIGH = 60_000
BACKLOG_LOW = 30_000
BACKLOG_MAX_WAIT_S = 1.0  # then produce anyway: a broken producer raises there, loudly
MARKS_TIMEOUT_S = 5.0  # the bound on reading where logs.raw ends, at a checkpoint


class _Emitter:
    """A source's :class:`~logfactory.collect.sources.base.Emit`: encodes records onto the raw
    topic (keyed by host), counts them, yields to the event loop every ``YIELD_EVERY``
    records and holds the source back while the producer's backlog is above
    ``BACKLOG_HIGH``. ``flush()`` returns once everything emitted so far is durable: a source
    that acknowledges to its senders (RELP) answers only then."""

    def __init__(
        self,
        producer: Producer,
        pending: Callable[[], int] | None,
        counts: list[int],
        durable: Callable[[], Awaitable[None]],
    ):
        self.flush = durable
        self._produce = producer.produce
        self._produce_many: (
            Callable[[str, Sequence[bytes], Sequence[bytes | None]], None] | None
        ) = producer.produce_many if isinstance(producer, BatchProducer) else None
        self._pending = pending
        self.counts = counts  # received, bytes, and both as last published

    async def __call__(self, record: Record) -> None:
        value = encode_record(record)
        self._produce(RAW_TOPIC, value, record.host.encode())
        counts = self.counts
        counts[0] += 1
        counts[1] += len(value)
        if counts[0] % YIELD_EVERY:
            return
        await self._pace()

    async def many(self, records: Sequence[Record]) -> None:
        values = encode_records(records)
        hosts = {r.host for r in records}
        if len(hosts) == 1:  # one file, one host: the usual case
            keys: list[bytes | None] = [hosts.pop().encode()] * len(values)
        else:
            keys = [r.host.encode() for r in records]
        if self._produce_many is not None:
            self._produce_many(RAW_TOPIC, values, keys)
        else:
            produce = self._produce
            for value, key in zip(values, keys, strict=True):
                produce(RAW_TOPIC, value, key)
        counts = self.counts
        counts[0] += len(values)
        counts[1] += sum(map(len, values))
        await self._pace()

    async def _pace(self) -> None:
        pending = self._pending
        if pending is not None and pending() > BACKLOG_HIGH:
            deadline = time.monotonic() + BACKLOG_MAX_WAIT_S
            while pending() > BACKLOG_LOW and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
        else:
            await asyncio.sleep(0)


class Agent:
    """Runs the ``config.sources`` whose type is in ``AGENT_TYPES``, plus ``extra_sources``.

    Each is built by the source registry from one :class:`SourceContext` (the data directory,
    ``registry``, ``hostname``, the node's settings, ``raw_log`` and ``clock``), named uniquely."""

    def __init__(
        self,
        config: Config,
        producer: Producer,
        registry: StatsRegistry,
        *,
        extra_sources: Sequence[Source] = (),
        raw_log: RawLog | None = None,
        hostname: str | None = None,
        checkpoint_interval: float = 1.0,
        spool_name: str = "collector",
        clock: Callable[[], int] = now_ns,
    ) -> None:
        self.config = config
        self.registry = registry
        self.spool: SpoolingProducer | None = None
        settings = config.collector
        if spools(config):
            self.spool = SpoolingProducer(
                producer,
                spool_path(config, spool_name),
                registry=registry,
                max_bytes=int(settings.spool_max_bytes),
                flush_timeout=float(settings.spool_flush_timeout),
                close_inner=False,  # the caller owns ``producer``
            )
            producer = self.spool
        self.producer = producer
        self.hostname = hostname or socket.gethostname()
        self.checkpoint_interval = checkpoint_interval
        self._pending: Callable[[], int] | None = (
            producer.pending if isinstance(producer, Backlog) else None
        )
        self._flushing = asyncio.Lock()  # one producer.flush at a time (see _durable)
        self._marks_query: asyncio.Future[dict[int, int]] | None = None  # see _bus_marks
        self._counts: dict[str, list[int]] = {}  # name -> [received, bytes, flushed r, flushed b]
        self._ready = asyncio.Event()
        self._failure: BaseException | None = None
        self.failed_source: Source | None = None  # the first source that failed, if any
        self.by_index: dict[int, Source] = {}  # index in config.sources -> its source
        # raw_log lets file sources skip, after a crash, what is on the bus
        ctx = SourceContext(
            config.data_dir, registry, self.hostname, config.node, raw_log=raw_log, clock=clock
        )
        self.sources: list[Source] = self._build(config.sources, ctx)
        self.sources.extend(extra_sources)
        # read at checkpoints only if a source needs it
        self.raw_log = raw_log if any(isinstance(s, Reconciling) for s in self.sources) else None

    def _build(self, configs: Sequence[SourceConfig], ctx: SourceContext) -> list[Source]:
        out: list[Source] = []
        names: set[str] = set()
        for index, sc in enumerate(configs):
            if sc.type not in AGENT_TYPES:
                continue  # http is served by the API; demo sources come in as extra_sources
            base = sc.name or sc.tag or sc.type
            name, i = base, 2
            while name in names:
                name, i = f"{base}-{i}", i + 1
            names.add(name)
            out.append(build_source(sc, ctx.named(name)))
            self.by_index[index] = out[-1]
        return out

    # -- readiness -------------------------------------------------------------------------
    def ready(self) -> asyncio.Event:
        """Set once every source listens (or once one failed: then :meth:`wait_ready` raises)."""
        return self._ready

    async def wait_ready(self) -> None:
        await self._ready.wait()
        if self._failure is not None:
            raise self._failure

    def idle_reasons(self) -> dict[str, str]:
        """Sources that run but read nothing, by name, with why (``"no file matches ..."``)."""
        out: dict[str, str] = {}
        for src in self.sources:
            reason = getattr(src, "idle_reason", None)
            if isinstance(reason, str):
                out[src.name] = reason
        return out

    def _report_idle(self) -> None:
        """Put idle sources on the health page (see the module docstring for which list),
        under names of their own: a source may report other problems as ``source:<name>``."""
        idle = self.idle_reasons()
        served = sum(1 for sc in self.config.sources if sc.type == "http")
        working = len(self.sources) - len(idle) + (served if self.config.http.enabled else 0)
        for src in self.sources:
            if not hasattr(src, "idle_reason"):
                continue
            reason = idle.get(src.name)
            group = f"source:{src.name}:idle"
            if reason is not None and not working:
                reason = f"{reason}; no source of this node has anything to read"
            self.registry.problem(group, reason if not working else None)
            self.registry.warning(group, reason if working else None)

    @property
    def listen_addresses(self) -> list[str]:
        """E.g. ``["syslog udp 127.0.0.1:5514", "syslog tcp 127.0.0.1:5514"]`` once ready."""
        out: list[str] = []
        for src in self.sources:
            addresses = getattr(src, "addresses", None)
            if callable(addresses):
                out.extend(addresses())
        return out

    # -- emitting --------------------------------------------------------------------------
    def _emitter(self, name: str) -> Emit:
        counts = self._counts.setdefault(name, [0, 0, 0, 0])
        return _Emitter(self.producer, self._pending, counts, self._durable)

    def _flush_stats(self) -> None:
        for name, c in self._counts.items():
            received, nbytes = c[0] - c[2], c[1] - c[3]
            if received or nbytes:
                c[2], c[3] = c[0], c[1]
                self.registry.add_many(f"source:{name}", received=received, bytes=nbytes)
        for src in self.sources:
            if isinstance(src, Lagging):
                try:
                    amount, unit = src.lag()
                except Exception:  # a gauge is not worth failing a checkpoint for
                    log.debug("lag of source %r unavailable", src.name, exc_info=True)
                    continue
                self.registry.gauge(f"source:{src.name}:lag_{unit}", amount)

    async def flush(self) -> None:
        """Return once every record emitted before the call is durable on the bus."""
        self._flush_stats()
        await self._durable()

    async def _durable(self) -> None:
        """``producer.flush`` in a thread, one at a time: checkpoints and sources that wait for
        durability (RELP) share it, and a flush waiting for the last one's answer would only hold
        another executor thread (the spool serialises its own flushes anyway)."""
        async with self._flushing:
            await asyncio.get_running_loop().run_in_executor(None, self.producer.flush)

    async def _checkpoint(self) -> None:
        marks = await self._bus_marks()
        tokens = [
            (s, s.checkpoint(marks) if isinstance(s, Reconciling) else s.checkpoint())
            for s in self.sources
            if isinstance(s, Checkpointed)
        ]
        await self.flush()
        for src, token in tokens:
            await src.commit(token)

    async def _bus_marks(self) -> dict[int, int] | None:
        """Where ``logs.raw`` ends now, for sources that reconcile after a crash; None when
        nobody needs it or the bus cannot say (then a crash may re-send, as before).

        Bounded by ``MARKS_TIMEOUT_S``: on Kafka the query waits up to 30 s for brokers that
        went away, and this checkpoint's flush, which is what notices the outage and switches
        to the spool, must not wait behind it (it did: 35 s of traffic held in memory, no
        position committed, health silent). A query still running is not started again."""
        raw_log = self.raw_log
        if raw_log is None:
            return None
        if self.spool is not None and self.spool.state()["mode"] != "direct":
            return None  # records wait in the spool, where reading logs.raw cannot see them
        pending = self._marks_query
        if pending is None or pending.done():
            pending = asyncio.get_running_loop().run_in_executor(None, raw_log.marks)
            # an error of a query nobody awaited any more is only this checkpoint's None
            pending.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._marks_query = pending
        try:
            # shielded: a query that outlives the bound finishes in its thread, unawaited
            return await asyncio.wait_for(asyncio.shield(pending), MARKS_TIMEOUT_S)
        except TimeoutError:
            log.debug("logs.raw watermarks not answered within %g s", MARKS_TIMEOUT_S)
            return None
        except BusError as exc:
            log.debug("logs.raw watermarks unavailable at this checkpoint: %s", exc)
            return None

    async def _checkpoint_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.checkpoint_interval)
            if stop.is_set():
                return
            self._report_idle()
            try:
                await self._checkpoint()
            except Exception:
                # the next round retries; positions lag behind, which only means re-sending
                log.exception("collector checkpoint failed")
                self.registry.add("agent", "errors")

    def _failed(self, src: Source, exc: BaseException) -> None:
        if self._failure is None:
            self._failure, self.failed_source = exc, src

    async def _await_ready(self) -> None:
        async def started(src: Source) -> None:
            try:
                await src.started()
            except Exception as exc:
                self._failed(src, exc)

        await asyncio.gather(
            *(started(s) for s in self.sources if callable(getattr(s, "started", None)))
        )
        if self._failure is None:
            self._report_idle()
        self._ready.set()

    def _close_spool(self) -> None:
        """Put what the bus has not confirmed on disk (a no-op once closed)."""
        if self.spool is None:
            return
        try:
            self.spool.close()
        except Exception as exc:  # raised by run(), after the sources have stopped
            log.exception("closing the collector spool failed")
            if self._failure is None:
                self._failure = exc

    # -- running ---------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Collect until ``stop``; then drain, flush and persist (see the module docstring)."""
        inner = asyncio.Event()  # set on stop, or when a source failed
        task_source: dict[asyncio.Task[None] | asyncio.Task[bool], Source] = {}
        for src in self.sources:
            run = src.run(self._emitter(src.name), inner)
            task_source[asyncio.create_task(run, name=f"source:{src.name}")] = src
        tasks = set(task_source)
        ready = asyncio.create_task(self._await_ready())
        checkpoints = asyncio.create_task(self._checkpoint_loop(inner))
        stopping = asyncio.create_task(stop.wait())
        try:
            waiting: set[asyncio.Task[None] | asyncio.Task[bool]] = {*tasks, stopping}
            while not stop.is_set() and self._failure is None:
                done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task is not stopping and (exc := task.exception()) is not None:
                        self._failed(task_source[task], exc)
                        # at start it is raised to wait_ready()'s caller, who explains it
                        say = log.error if self._ready.is_set() else log.debug
                        say("collector source %s failed: %r", task.get_name(), exc)
            inner.set()
            results = await asyncio.gather(*task_source, return_exceptions=True)
            for src, result in zip(task_source.values(), results, strict=True):
                if isinstance(result, BaseException):
                    self._failed(src, result)
            await checkpoints  # ends at ``inner``; never cut off in the middle of a commit
            await self._checkpoint()
            if self.spool is not None:
                await asyncio.get_running_loop().run_in_executor(None, self.spool.close)
        except asyncio.CancelledError:
            inner.set()
            for task in (*tasks, checkpoints):
                task.cancel()
            raise
        finally:
            stopping.cancel()
            if not ready.done():
                ready.cancel()
            self._ready.set()  # nobody waits forever on an agent that has ended
            self._flush_stats()
            self._close_spool()
        if self._failure is not None:
            raise self._failure
