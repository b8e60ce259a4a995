"""The all-in-one node: collectors and API in this process, the event factory and the log
store in children.

Why two processes: the factory is CPU-bound Python and the collectors are latency-bound I/O;
separate processes give each its own core and GIL, and the embedded bus is built for several
processes. The parent supervises the factory and the store (restarting either if it dies) and
prints the live summary; Ctrl-C stops the sources first, flushes what they accepted, then stops
the factory after its current batch and the store after its commit — everything accepted is on
the durable bus and nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sqlite3
import sys
import time
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

import uvicorn

from logfactory.access.bootstrap import ensure_admin
from logfactory.access.store import ACCESS_DB, AccessStore
from logfactory.api import NodeContext, create_app
from logfactory.bus import open_bus
from logfactory.bus.base import Bus, BusError, Offloading, Producer, Verifiable
from logfactory.collect.agent import Agent, spool_path, spools
from logfactory.collect.connections import DEFAULT_MAX_CONNECTIONS, ConnectionLimit
from logfactory.collect.sources.base import Source
from logfactory.collect.sources.build import build_source
from logfactory.collect.sources.context import SourceContext
from logfactory.collect.sources.file_reconcile import BusRawLog
from logfactory.collect.tls import TlsConfigError
from logfactory.config import Config
from logfactory.factory.lifeline import NODE_WORKER_ID
from logfactory.factory.lifeline import pid_name as factory_pid_name
from logfactory.factory.runner import run_factory
from logfactory.node_banner import banner_lines
from logfactory.node_child import ChildRole
from logfactory.node_limits import (
    ConnectionPlan,
    FdLimit,
    api_protocol,
    open_fds,
    plan_connections,
    raise_fd_limit,
)
from logfactory.node_start import (
    DataDirLock,
    NodeError,
    bind_api_socket,
    source_error,
)
from logfactory.node_summary import LiveSummary, SummaryLogHandler, SummaryScreen, read_totals
from logfactory.node_tls import api_tls_context
from logfactory.owner_only import make_owner_only
from logfactory.stats import StatsRegistry, StatsWriter
from logfactory.store.open import describe_store
from logfactory.store.runner import PID_NAME as STORE_PID_NAME
from logfactory.topics import ensure_topics, event_types

__all__ = ["Node", "NodeError", "run_factory"]

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


class Node:
    """Runs one node from a configuration; ``with_factory`` also supervises a factory child.

    ``command`` (run, collect, serve) names the process in the data directory's lock, which a
    node with collectors holds (see :mod:`logfactory.node_start`). Conditions a user causes
    raise :class:`NodeError` from :meth:`run`, phrased for them."""

    def __init__(
        self,
        config: Config,
        *,
        with_factory: bool = True,
        with_collectors: bool = True,
        with_api: bool = True,
        quiet: bool = False,
        command: str = "run",
    ) -> None:
        self.config = config
        self.with_factory = with_factory
        self.with_collectors = with_collectors
        self.with_api = with_api and config.http.enabled
        self.quiet = quiet
        self.command = command
        self.data_dir = config.data_dir
        self.stats_dir = self.data_dir / "stats"
        role = "node" if with_collectors and with_api else "collector" if with_collectors else "api"
        self.registry = StatsRegistry(role)
        self._factory = ChildRole(
            "factory", [sys.executable, "-m", "logfactory", "factory", "-c", config.path,
                        "--worker-id", NODE_WORKER_ID],
            self.data_dir, factory_pid_name(NODE_WORKER_ID),
        )  # fmt: skip
        # the log store: a child of the all-in-one node (`logfactory run`) beside its factory,
        # unless disabled (`--no-factory` keeps to collectors and API, as it always has)
        self.with_store = with_factory and with_collectors and config.store.enabled
        self._store = ChildRole(
            "store", [sys.executable, "-m", "logfactory", "store", "-c", config.path],
            self.data_dir, STORE_PID_NAME,
        )  # fmt: skip
        self.screen = SummaryScreen(sys.stdout)
        # an edge shipping over HTTP decodes nothing: events there mean nothing (in= only)
        self.summary = LiveSummary(event_types(config), events=config.bus.type != "http")
        self._summary_started = False
        self.fd_limit: FdLimit | None = None  # set by run()
        self.connections: ConnectionPlan | None = None  # set by _main()

    def _say(self, text: str) -> None:
        if not self.quiet:
            self.screen.say(text)

    # -- the children (node_child.py, lifeline.py) -------------------------------------------
    def _start_factory(self) -> None:
        """Start the factory child after ending a factory of this data directory's worker id
        that is not ours. From the main thread: the parent-death signal follows the thread."""
        stale = self._factory.end_stale()
        if stale is not None:
            self._say(f"factory     ended pid {stale}, a factory of this data directory that "
                      "an earlier node left running")  # fmt: skip
        pid = self._factory.start()
        self._say(f"factory     pid {pid} (consumer group {self.config.factory.group})")

    def _start_store(self) -> None:
        """Start the store child after ending a store of this data directory that is not ours
        (two would fight over the engine's lock). From the main thread, as the factory."""
        stale = self._store.end_stale()
        if stale is not None:
            self._say(f"store       ended pid {stale}, a store of this data directory that "
                      "an earlier node left running")  # fmt: skip
        pid = self._store.start()
        self._say(f"store       pid {pid} ({describe_store(self.config)})")

    # -- main -----------------------------------------------------------------------------
    def run(self) -> int:
        """Run until SIGINT/SIGTERM; 0 after a clean stop. Raises :class:`NodeError`."""
        self.fd_limit = raise_fd_limit()  # before anything opens: the children inherit it too
        # before anything is written there: owner-only from the first file on, children too
        make_owner_only(self.data_dir)
        lock = DataDirLock(self.config, self.command).acquire() if self.with_collectors else None
        try:
            sock = bind_api_socket(self.config) if self.with_api else None
            try:
                return run_event_loop(self._main(sock))
            except BusError as exc:  # e.g. no broker answers: the configuration says where
                text = str(exc).replace("-c CONFIG", f"-c {self.config.path}")  # bus repair
                raise NodeError(
                    f"{self.config.path}: bus ({self.config.bus.type}): {text}"
                ) from exc
            finally:
                if sock is not None:
                    sock.close()
        finally:
            if lock is not None:
                lock.release()

    def _access(self) -> AccessStore:
        """The data directory's access store; on a first start with the admin credential made
        and where to find it said once (in the log under ``--quiet``, which has no screen)."""
        try:
            access = AccessStore.in_dir(self.data_dir)
            made = ensure_admin(access, self.data_dir)
        except (OSError, sqlite3.Error) as exc:
            raise NodeError(
                f"node.data_dir {self.data_dir}: cannot open the access store "
                f"{self.data_dir / ACCESS_DB}: {exc}"
            ) from None
        if made is not None:
            text = (
                f"first start: an admin user and API token were made; they are in {made} "
                "(readable by you only). 'logfactory token' prints the token; log in as "
                "'admin' with the password from that file"
            )
            if self.quiet:  # no screen: the log keeps it
                log.warning("%s", text)
            else:
                self._say(text)
        return access

    def _server(self, ctx: NodeContext) -> _QuietServer:
        http = self.config.http
        registry = self.registry

        def count(counter: str) -> None:
            registry.add("api", counter)

        limit = ConnectionLimit(
            "the HTTP API", http.max_connections or DEFAULT_MAX_CONNECTIONS,
            float(http.connection_idle_timeout), count=count,
        )  # fmt: skip
        head_bytes = int(http.max_header_bytes)
        tls = api_tls_context(self.config)  # a file that cannot be loaded stops the start here
        protocol = api_protocol(
            limit, head_bytes, count, tls, lambda: count("tls_handshakes_failed")
        )
        config = uvicorn.Config(
            create_app(ctx), log_level="warning", access_log=False, lifespan="on",
            http=protocol, h11_max_incomplete_event_size=head_bytes,
        )  # fmt: skip
        return _QuietServer(config)

    def _spool_carries_on(self) -> bool:
        """Whether a bus that cannot be reached at start is an outage to spool through, not a
        configuration to refuse: only collectors, on a spooling bus, that have spooled before
        (a first start against a wrong address still fails)."""
        config = self.config
        with_spool = spools(config) and spool_path(config).exists()
        return self.with_collectors and not self.with_factory and with_spool

    def _agent(self, producer: Producer, bus: Bus) -> tuple[Agent, dict[int, Source]]:
        ctx = SourceContext(self.data_dir, self.registry, node=self.config.node)
        demos: dict[int, Source] = {
            i: build_source(sc, ctx)
            for i, sc in enumerate(self.config.sources)
            if sc.type == "demo"
        }
        try:
            agent = Agent(
                self.config, producer, self.registry, extra_sources=list(demos.values()),
                raw_log=BusRawLog(bus),
            )  # fmt: skip
        except TlsConfigError as exc:
            raise NodeError(f"{self.config.path}: {exc}") from exc
        return agent, {**agent.by_index, **demos}

    def _banner(self, sources: dict[int, Source], agent: Agent | None) -> None:
        scheme = "https" if self.config.http.tls_cert else "http"
        base = f"{scheme}://{self.config.http.listen}"
        idle = agent.idle_reasons() if agent is not None else {}
        idle_at = {i: idle[s.name] for i, s in sources.items() if s.name in idle}
        for row in banner_lines(
            self.config, sources, ingest_url=f"{base}/api/v1/ingest" if self.with_api else None,
            collectors=self.with_collectors, idle=idle_at,
        ):  # fmt: skip
            self._say(row)
        if self.with_api:
            http = self.config.http
            mtls = f", client certificates {http.tls_client_auth}" if http.tls_client_ca else ""
            self._say(f"http        {base}/api/v1/health, API docs at /docs{mtls}")
        plan, fds = self.connections, self.fd_limit
        if plan is not None and fds is not None and plan.caps:
            text = f"{fds.describe()}; {plan.describe()}"
            log.info("limits: %s", text)
            self._say(f"limits      {text}")
            for warning in plan.warnings:
                self._say(f"warning     {warning}")

    def _open_bus(self) -> Bus:
        """The node's bus, verified, with its topics; the counters' directory, cleared of a
        previous run's files by the all-in-one node. Raises what ``ensure_topics`` raises,
        unless a collector restarted in an outage can carry on into its spool."""
        bus: Bus = open_bus(self.config)
        if isinstance(bus, Verifiable):  # a damaged bus refuses the start (bus/local/repair.py)
            bus.verify()
        self.stats_dir.mkdir(parents=True, exist_ok=True)
        if self.with_collectors and self.with_api:  # the all-in-one node owns the counters
            for old in self.stats_dir.glob("*.json"):  # a previous run's are not ours
                old.unlink()
        try:
            ensure_topics(bus, self.config)
        except BusError as exc:
            if not self._spool_carries_on():
                raise
            # a collector restarted in an outage (after a crash): spool, as it would have done
            # had it kept running; the spool it left proves the bus was right before
            log.warning("bus not reachable at start (%s): collecting into the spool", exc)
            self._say(f"warning     bus not reachable at start, collecting into the spool: {exc}")
        return bus

    def _say_stopped(self, delivered: bool, agent: Agent | None) -> None:
        """The last line: whether everything accepted reached the bus, and if not, where it is."""
        if delivered:
            self._say("stopped cleanly; everything accepted is on the bus")
        elif agent is not None and agent.spool is not None:
            self._say("stopped; the bus is unreachable, what it did not confirm is in the "
                      "spool and is sent at the next start")  # fmt: skip
        else:
            self._say("stopped; the bus did not confirm everything in time (see the log)")

    async def _main(self, sock: socket.socket | None) -> int:
        bus = self._open_bus()
        # on the embedded bus the SQLite appends run in a writer process of their own, so the
        # collectors keep this process's core (bus/local/writer.py)
        producer: Producer = (
            bus.offload_producer() if isinstance(bus, Offloading) else bus.producer(patient=True)
        )
        writer = StatsWriter(self.registry, self.stats_dir).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        tasks: list[asyncio.Task[None]] = [asyncio.create_task(self._maintain(bus, stop))]
        if self.fd_limit is not None:  # the listeners' caps, from what is left of the limit
            self.connections = plan_connections(
                self.config, collectors=self.with_collectors, api=sock is not None,
                limit=self.fd_limit.soft, in_use=open_fds(),
            )  # fmt: skip
            self.config = self.connections.config
        agent: Agent | None = None
        server: _QuietServer | None = None
        try:
            sources: dict[int, Source] = {}
            if self.with_collectors:
                agent, sources = self._agent(producer, bus)
                tasks.append(asyncio.create_task(agent.run(stop)))
            if sock is not None:
                access = self._access()
                ctx = NodeContext(
                    config=self.config,
                    bus=bus,
                    # HTTP ingest goes through the collectors' spool too: a 200 means on disk or
                    # on the bus, even while the brokers are away
                    producer=agent.spool if agent is not None and agent.spool is not None
                    else producer,
                    registry=self.registry,
                    stats_dir=self.stats_dir,
                    started=time.time(),
                    access=access,
                    expected_processes=self._expected_processes(),
                )  # fmt: skip
                server = self._server(ctx)
                tasks.append(asyncio.create_task(server.serve(sockets=[sock])))
            self._say(f"logfactory node {self.config.node.name!r}, data in {self.data_dir}")
            for warning in self.config.warnings:
                self._say(f"warning     {warning}")
            if agent is not None:
                try:
                    await agent.wait_ready()
                except OSError as exc:  # a listener: named with its configuration line
                    raise source_error(
                        self.config, agent.by_index, agent.failed_source, exc
                    ) from exc
            self._banner(sources, agent)
            if self.with_factory:
                self._start_factory()
            if self.with_store:
                self._start_store()
            await self._supervise(stop, tasks)
        finally:
            stop.set()
            self._end_summary()
            if server is not None:
                server.should_exit = True
            await asyncio.gather(*tasks, return_exceptions=True)
            delivered = await asyncio.to_thread(self._flush_bounded, producer)
            await asyncio.to_thread(self._factory.stop)
            await asyncio.to_thread(self._store.stop)  # last: it stores what the factory made
            if delivered:
                producer.close()
            writer.stop()
            bus.close()
        self._say_stopped(delivered, agent)
        return 0

    def _expected_processes(self) -> tuple[str, ...]:
        """The roles health expects a live process of: a dead child makes the node degraded."""
        return ("factory",) * self.with_factory + ("store",) * self.with_store

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

    # -- the live summary (node_summary.py) -----------------------------------------------
    def _draw_summary(self, now: float, *, rates: bool = True) -> str:
        try:
            totals = read_totals(self.stats_dir)
        except OSError as exc:  # e.g. no descriptor free for a moment: the last totals stand
            log.debug("summary: cannot read %s: %s", self.stats_dir, exc)
        else:
            self.summary.update(totals, now)
        return self.summary.line(self.screen.width(), rates=rates)

    def _end_summary(self) -> None:
        """At stop, before anything else is printed: the last counters, and a new line (which
        also wipes the ``^C`` the terminal echoed onto the summary's row)."""
        if self._summary_started:
            self._summary_started = False
            self.screen.finish(self._draw_summary(time.monotonic(), rates=False))

    async def _supervise(self, stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
        handler: logging.Handler | None = None
        if not self.quiet and self.screen.tty:
            handler = SummaryLogHandler(self.screen)
            logging.getLogger().addHandler(handler)
        self._summary_started = not self.quiet
        last_print = 0.0
        restarts = 0
        store_restarts = 0
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=1.0)
                for task in tasks:
                    if task.done() and (exc := task.exception()) is not None:
                        if isinstance(exc, OSError):  # the disk, the network: not a bug
                            raise NodeError(f"the node stopped: {exc}") from exc
                        raise RuntimeError("a node component failed") from exc
                status = self._factory.exited()
                if status is not None and not stop.is_set():
                    restarts += 1
                    self._say(f"factory exited with {status}; restarting (#{restarts})")
                    await asyncio.sleep(min(5.0, 0.5 * restarts))
                    try:
                        self._start_factory()
                    except OSError as exc:  # no descriptor or process free: the next round
                        self._say(f"factory could not be started: {exc}; trying again")
                status = self._store.exited()
                if self.with_store and status is not None and not stop.is_set():
                    store_restarts += 1
                    self._say(f"store exited with {status}; restarting (#{store_restarts})")
                    await asyncio.sleep(min(5.0, 0.5 * store_restarts))
                    try:
                        self._start_store()
                    except OSError as exc:
                        self._say(f"store could not be started: {exc}; trying again")
                now = time.monotonic()
                if stop.is_set():
                    return  # the last line is _end_summary's
                if not self.quiet and (self.screen.tty or now - last_print >= 10):
                    self.screen.draw(self._draw_summary(now))
                    last_print = now
        finally:
            if handler is not None:
                logging.getLogger().removeHandler(handler)
