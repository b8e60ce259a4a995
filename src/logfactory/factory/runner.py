"""``logfactory factory``: one worker of the group, kept running through bus trouble.

Why rebuild the whole worker after a bus error instead of retrying the failed call: a batch
whose transaction failed has already changed the worker's memory (windows counted, templates
learned, positions advanced) without the bus keeping any of it. The only state that is certainly
right is what the bus committed, so the worker is thrown away and a new one re-reads it: the
pattern library, each partition's state and the committed offsets. That is the same path a
crashed worker takes, exercised on every broker outage instead of only on crashes.

While the bus is unreachable the runner waits (doubling up to ``MAX_BACKOFF_S``) and reports the
problem to its stats registry, which the node's health endpoint shows; the first successful
batch clears it. A programming error is not retried here: it ends the process (the node's
supervisor, or systemd, restarts it) rather than looping on a bug.

Stopping: SIGTERM/SIGINT finish the batch in hand and leave the group. If that has not happened
within ``SHUTDOWN_GRACE_S`` (a broker that stopped answering can hold librdkafka for minutes),
or on a second signal, the process exits at once: safe, because work that was not committed in
a transaction is aborted by the brokers and read again by whoever owns the partition next. A
node's factory child stops the same way when its node is gone, even killed (:mod:`.lifeline`).
SIGUSR1 writes every thread's stack to stderr, for "what is it waiting for?".
"""

from __future__ import annotations

import logging
import os
import threading

from logfactory.bus.base import BusError
from logfactory.config import Config
from logfactory.factory.lifeline import remove_pid_file, watch_parent, write_pid_file
from logfactory.lifeline import RestartBackoff, stop_on_signals
from logfactory.owner_only import make_owner_only
from logfactory.stats import StatsRegistry, StatsWriter

__all__ = ["MAX_BACKOFF_S", "SHUTDOWN_GRACE_S", "run_factory", "run_worker_resilient"]

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 10.0
SHUTDOWN_GRACE_S = 30.0
_PROBLEM = "bus"


def run_worker_resilient(
    config: Config,
    worker_id: str,
    registry: StatsRegistry,
    stop: threading.Event,
    *,
    first_backoff: float = 0.5,
) -> None:
    """Run workers one after another until ``stop``; see the module docstring."""
    from logfactory.bus import open_bus
    from logfactory.factory.worker import FactoryWorker

    backoff = RestartBackoff(lambda: registry.problem(_PROBLEM, None), first_backoff,
                             MAX_BACKOFF_S)  # fmt: skip
    while not stop.is_set():
        bus = None
        try:
            bus = open_bus(config, worker=f"factory-{worker_id}")
            worker = FactoryWorker(config, bus, registry)
            worker.on_commit = backoff.on_commit
            registry.problem(_PROBLEM, None)  # it read the library and joined: the bus answers
            worker.run(stop)
            return
        except BusError as exc:
            delay, since = backoff.failed()
            registry.add("factory", "restarts")
            registry.problem(
                _PROBLEM,
                f"factory worker cannot use the bus since {since}: {exc}; "
                f"it is paused and retries in {delay:g} s",
            )
            log.warning("factory worker paused after a bus error, retrying in %g s: %s",
                        delay, exc)  # fmt: skip
            stop.wait(delay)
        finally:
            if bus is not None:
                try:
                    bus.close()
                except Exception:  # closing a broken client must not hide the first error
                    log.debug("closing the bus after an error failed", exc_info=True)


def run_factory(config: Config, worker_id: str = "0") -> int:
    """Entry of ``logfactory factory``: one worker of the group until SIGTERM/SIGINT.

    ``worker_id`` must be unique among the running workers of a node and stable across a
    worker's restarts (on Kafka it names the worker's transactions, which fences a zombie).
    """
    make_owner_only(config.data_dir)  # a factory started alone writes there too: stats, pid
    registry = StatsRegistry(f"factory-{os.getpid()}")
    writer = StatsWriter(registry, config.data_dir / "stats").start()
    stop = threading.Event()
    begin_stop = stop_on_signals(
        stop,
        announce="stopping: finishing the batch in hand",
        grace=SHUTDOWN_GRACE_S,
        late="its open transaction is aborted by the brokers, nothing is lost",
    )
    watch_parent(lambda: begin_stop("the node that started this factory is gone"))
    pid_path = write_pid_file(config.data_dir, worker_id)
    try:
        run_worker_resilient(config, worker_id, registry, stop)
    finally:
        writer.stop()
        remove_pid_file(pid_path)
    return 0
