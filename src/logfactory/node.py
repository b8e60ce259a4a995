"""The all-in-one node: collectors and API in this process, the event factory in a child.

Why two processes: the factory is CPU-bound Python and the collectors are latency-bound I/O;
separate processes give each its own core and GIL, and the embedded bus is built for several
processes. The parent supervises the factory (restarting it if it dies) and prints the live
summary; Ctrl-C stops the sources first, flushes what they accepted, then stops the factory
after its current batch — everything accepted is on the durable bus and nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Coroutine, Generator
from pathlib import Path
from typing import Any, TypeVar

import uvicorn

from logfactory.bus.base import Bus, BusError, Producer
from logfactory.bus.local import LocalBus
from logfactory.centre.api import NodeContext, create_app
from logfactory.collect.agent import Agent
from logfactory.collect.sources.base import Source
from logfactory.collect.sources.demo import DemoSource
from logfactory.collect.sources.file_reconcile import BusRawLog
from logfactory.config import Config
from logfactory.factory.runner import run_factory
from logfactory.stats import StatsRegistry, StatsWriter, read_all_stats
from logfactory.subscribe import open_bus
from logfactory.topics import ensure_topics, event_types

__all__ = ["Node", "run_factory", "summary_line"]

log = logging.getLogger(__name__)


_T = TypeVar("_T")


GC_FIRST_GENERATION = 20_000  # allocations between young collections (CPython's default: 700)


def tune_gc() -> None:
    """Fewer, cheaper cycle collections for a process that allocates per record.

    Everything alive at start (modules, configuration, compiled patterns) is frozen out of
    the collector's view, and the young generation is collected every 20,000 allocations
    instead of 700: at 100,000 datagrams a second CPython's defaults spent a measurable share
    of the collector's core walking the same long-lived objects again and again."""
    gc.freeze()
    gc.set_threshold(GC_FIRST_GENERATION, 10, 10)


def run_event_loop(main: Coroutine[Any, Any, _T]) -> _T:
    """Run ``main`` on uvloop (libuv), unless ``LOGFACTORY_EVENT_LOOP=asyncio``.

    The collectors are one event loop doing socket reads and per-connection callbacks; on
    uvloop those cost about half of what CPython's selector loop charges, which is the
    difference between one core receiving ~50k and ~100k syslog lines a second. The plain
    loop stays one variable away for debugging (asyncio's debug mode, tracebacks).
    """
    tune_gc()
    if os.environ.get("LOGFACTORY_EVENT_LOOP", "uvloop") != "asyncio":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the node decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def summary_line(stats_dir: Path, types: list[str]) -> str:
    """One line: records in, events out by type, dead letters — summed over live processes."""
    records_in = 0
    events: dict[str, int] = {}
    dead = 0
    for snap in read_all_stats(stats_dir):
        for group, counters in snap.get("counters", {}).items():
            if group.startswith("source:"):
                records_in += int(counters.get("received", 0))
            elif group.startswith("events:"):
                name = group.split(":", 1)[1]
                events[name] = events.get(name, 0) + int(counters.get("sent", 0))
            elif group == "deadletter":
                dead += int(counters.get("sent", 0))
    parts = " ".join(f"{t}={events.get(t, 0)}" for t in types)
    return f"in={records_in} | events {parts} | deadletter={dead}"


class Node:
    """Runs one node from a configuration; ``with_factory`` also supervises a factory child."""

    def __init__(
        self,
        config: Config,
        *,
        with_factory: bool = True,
        with_collectors: bool = True,
        with_api: bool = True,
        quiet: bool = False,
    ) -> None:
        self.config = config
        self.with_factory = with_factory
        self.with_collectors = with_collectors
        self.with_api = with_api and config.http.enabled
        self.quiet = quiet
        self.data_dir = config.data_dir
        self.stats_dir = self.data_dir / "stats"
        role = "node" if with_collectors and with_api else "collector" if with_collectors else "api"
        self.registry = StatsRegistry(role)
        self._factory: subprocess.Popen[bytes] | None = None

    def _say(self, text: str) -> None:
        if not self.quiet:
            print(text, flush=True)

    # -- the factory child ----------------------------------------------------------------
    def _start_factory(self) -> None:
        cmd = [sys.executable, "-m", "logfactory", "factory", "-c", self.config.path]
        self._factory = subprocess.Popen(cmd, start_new_session=True)
        self._say(
            f"factory     pid {self._factory.pid} (consumer group {self.config.factory.group})"
        )

    def _stop_factory(self) -> None:
        proc = self._factory
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    # -- main -----------------------------------------------------------------------------
    def run(self) -> int:
        return run_event_loop(self._main())

    async def _main(self) -> int:
        bus: Bus = open_bus(self.config)
        self.stats_dir.mkdir(parents=True, exist_ok=True)
        if self.with_collectors and self.with_api:  # the all-in-one node owns the counters
            for old in self.stats_dir.glob("*.json"):  # a previous run's are not ours
                old.unlink()
        ensure_topics(bus, self.config)
        # on the embedded bus the SQLite appends run in a writer process of their own, so the
        # collectors keep this process's core (bus/local_writer.py)
        producer: Producer = (
            bus.producer(offload=True) if isinstance(bus, LocalBus) else bus.producer(patient=True)
        )
        writer = StatsWriter(self.registry, self.stats_dir).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        tasks: list[asyncio.Task[None]] = [asyncio.create_task(self._maintain(bus, stop))]
        agent: Agent | None = None
        if self.with_collectors:
            extra: list[Source] = [
                DemoSource(src, self.config.node)
                for src in self.config.sources
                if src.type == "demo"
            ]
            agent = Agent(
                self.config, producer, self.registry, extra_sources=extra, raw_log=BusRawLog(bus)
            )
            tasks.append(asyncio.create_task(agent.run(stop)))
        server: _QuietServer | None = None
        if self.with_api:
            host, _, port = self.config.http.listen.rpartition(":")
            ctx = NodeContext(
                config=self.config,
                bus=bus,
                # HTTP ingest goes through the collectors' spool too: a 200 means on disk or on
                # the bus, even while the brokers are away
                producer=agent.spool if agent is not None and agent.spool is not None else producer,
                registry=self.registry,
                stats_dir=self.stats_dir,
                started=time.time(),
                expected_processes=("factory",) if self.with_factory else (),
            )
            server = _QuietServer(
                uvicorn.Config(
                    create_app(ctx), host=host.strip("[]"), port=int(port), log_level="warning",
                    access_log=False, lifespan="off", ssl_certfile=self.config.http.tls_cert,
                    ssl_keyfile=self.config.http.tls_key,
                )
            )  # fmt: skip
            tasks.append(asyncio.create_task(server.serve()))
        self._say(f"logfactory node {self.config.node.name!r}, data in {self.data_dir}")
        if agent is not None:
            await agent.wait_ready()
            for where in agent.listen_addresses:
                self._say(f"listening   {where}")
        if server is not None:
            scheme = "https" if self.config.http.tls_cert else "http"
            self._say(f"http        {scheme}://{self.config.http.listen}/api/v1/health")
        if self.with_factory:
            self._start_factory()
        try:
            await self._supervise(stop, tasks)
        finally:
            stop.set()
            if server is not None:
                server.should_exit = True
            await asyncio.gather(*tasks, return_exceptions=True)
            delivered = await asyncio.to_thread(self._flush_bounded, producer)
            await asyncio.to_thread(self._stop_factory)
            if delivered:
                producer.close()
            writer.stop()
            bus.close()
            if not self.quiet:
                sys.stdout.write("\n")
            if delivered:
                self._say("stopped cleanly; everything accepted is on the bus")
            elif agent is not None and agent.spool is not None:
                self._say("stopped; the bus is unreachable, what it did not confirm is in the "
                          "spool and is sent at the next start")  # fmt: skip
            else:
                self._say("stopped; the bus did not confirm everything in time (see the log)")
        return 0

    STOP_FLUSH_TIMEOUT_S = 10.0

    def _flush_bounded(self, producer: Producer) -> bool:
        """Flush at stop, but not forever: during an outage the spool already holds a copy of
        everything the bus has not confirmed (see ``collect.spool``)."""
        try:
            producer.flush(self.STOP_FLUSH_TIMEOUT_S)
        except BusError as exc:
            log.warning("bus did not confirm everything at stop: %s", exc)
            return False
        return True

    MAINTAIN_INTERVAL_S = 30.0

    async def _maintain(self, bus: Bus, stop: asyncio.Event) -> None:
        """Retention and compaction of the bus, in the background, off the event loop."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.MAINTAIN_INTERVAL_S)
            if stop.is_set():
                return
            try:
                dropped = await asyncio.to_thread(bus.maintain)
            except Exception:  # retention must never take the node down; it retries later
                log.exception("bus maintenance failed")
                continue
            for topic, n in dropped.items():
                if n:
                    self.registry.add("bus:retention", topic, n)

    async def _supervise(self, stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
        types = event_types(self.config)
        tty = sys.stdout.isatty()
        last_print = 0.0
        restarts = 0
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            for task in tasks:
                if task.done() and task.exception() is not None:
                    raise RuntimeError("a node component failed") from task.exception()
            proc = self._factory
            if proc is not None and proc.poll() is not None and not stop.is_set():
                restarts += 1
                self._say(f"\nfactory exited with {proc.returncode}; restarting (#{restarts})")
                await asyncio.sleep(min(5.0, 0.5 * restarts))
                self._start_factory()
            now = time.monotonic()
            if not self.quiet and (tty or now - last_print >= 10):
                line = summary_line(self.stats_dir, types)
                sys.stdout.write(f"\r\x1b[2K{line}" if tty else f"{line}\n")
                sys.stdout.flush()
                last_print = now
