"""``logfactory store``: the store role, kept running through engine and bus trouble.

Why rebuild the whole role after an error instead of retrying the failed call: after a failed
engine commit the writer's memory holds documents the engine may or may not have, and the
consumer's position is past offsets that were never committed. The only state certainly right
is the bus's committed offsets (plus what the engine made durable, which it recognises by id),
so the writer, the consumer and the bus client are thrown away and new ones resume from there:
the same path a crashed store takes, exercised on every outage instead of only on crashes.

While the engine cannot take writes (down, full, locked by another store) or the bus does not
answer, the runner waits (doubling up to :data:`MAX_BACKOFF_S`) and reports the problem
``store`` to its stats registry, which ``/api/v1/health`` shows (and ``/metrics`` as
``logfactory_process_problem``); the first committed batch (or an idle bus with nothing
to commit) clears it. The bus keeps the records meanwhile. A programming error is not retried
here: it ends the process (the node's supervisor restarts it) rather than looping on a bug.

Stopping: SIGTERM/SIGINT finish the batch in hand, commit it (engine, then offsets) and exit.
If that has not happened within :data:`SHUTDOWN_GRACE_S`, or on a second signal, the process
exits at once: safe, because offsets are committed only after the engine has the batch. A
node's store child stops the same way when its node is gone, even killed
(:mod:`logfactory.lifeline`). SIGUSR1 writes every thread's stack to stderr.
"""

from __future__ import annotations

import logging
import os
import threading

from logfactory.bus.base import Bus, BusError
from logfactory.config import Config
from logfactory.errors import StoreUnavailable
from logfactory.lifeline import (
    RestartBackoff,
    remove_pid_file,
    stop_on_signals,
    watch_parent,
    write_pid_file,
)
from logfactory.owner_only import make_owner_only
from logfactory.stats import StatsRegistry, StatsWriter
from logfactory.store.engine import StoreWriter

__all__ = [
    "MAX_BACKOFF_S",
    "PID_NAME",
    "PROBLEM",
    "SHUTDOWN_GRACE_S",
    "run_store",
    "run_store_resilient",
]

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 10.0
SHUTDOWN_GRACE_S = 30.0
PROBLEM = "store"
"""The stats registry's problem name while the store is paused."""
PID_NAME = "store"
"""``<data_dir>/store.pid`` names the running store (one per data directory)."""


def _close(what: str, thing: StoreWriter | Bus | None) -> None:
    if thing is None:
        return
    try:
        thing.close()
    except Exception:  # closing a broken engine or client must not hide the first error
        log.debug("closing the %s after an error failed", what, exc_info=True)


def run_store_resilient(
    config: Config,
    registry: StatsRegistry,
    stop: threading.Event,
    *,
    first_backoff: float = 0.5,
) -> None:
    """Run store roles one after another until ``stop``; see the module docstring."""
    from logfactory.bus import open_bus
    from logfactory.store.open import open_writer
    from logfactory.store.role import StoreRole

    backoff = RestartBackoff(lambda: registry.problem(PROBLEM, None), first_backoff,
                             MAX_BACKOFF_S)  # fmt: skip
    while not stop.is_set():
        bus: Bus | None = None
        writer: StoreWriter | None = None
        try:
            bus = open_bus(config, worker="store")
            writer = open_writer(config)
            role = StoreRole(config, bus, writer, registry)
            # the problem stays until a batch is committed (or there is none to commit): an
            # engine that opens but cannot commit (a full disk) must not flap healthy
            role.on_commit = backoff.on_commit
            role.run(stop)
            return
        except (StoreUnavailable, BusError) as exc:
            delay, since = backoff.failed()
            what = "the store engine" if isinstance(exc, StoreUnavailable) else "the bus"
            registry.add("store", "errors")
            registry.problem(
                PROBLEM,
                f"store paused since {since}: {what} cannot be used: {exc}; "
                f"the bus keeps the records, retrying in {delay:g} s",
            )
            log.warning("store paused after an error of %s, retrying in %g s: %s", what,
                        delay, exc)  # fmt: skip
            stop.wait(delay)
        finally:
            _close("store engine", writer)
            _close("bus", bus)


def run_store(config: Config) -> int:
    """Entry of ``logfactory store``: the store role until SIGTERM/SIGINT (or its node's end)."""
    make_owner_only(config.data_dir)
    registry = StatsRegistry(f"store-{os.getpid()}")
    stats = StatsWriter(registry, config.data_dir / "stats").start()
    stop = threading.Event()
    begin_stop = stop_on_signals(
        stop,
        announce="store stopping: committing the batch in hand",
        grace=SHUTDOWN_GRACE_S,
        late="offsets follow the engine's commits, nothing is lost",
    )
    watch_parent(lambda: begin_stop("the node that started this store is gone"))
    pid_path = write_pid_file(config.data_dir, PID_NAME)
    try:
        run_store_resilient(config, registry, stop)
    finally:
        stats.stop()
        remove_pid_file(pid_path)
    return 0
