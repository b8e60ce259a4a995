"""How readers (``subscribe``, ``tail``, the SDK) open a bus: never creating one, and never
waiting silently for messages that no running node can write.

A node's processes prove that they run through the stats snapshots they rewrite every second
(:mod:`logfactory.stats`); a reader asks :func:`require_node` whenever it has read everything
stored and would wait, and stops with :class:`NoNodeError` when none runs, unless it was told to
wait. The error names the bus directory, the config it came from and how to start a node.
"""

from __future__ import annotations

import time
from pathlib import Path

from logfactory.bus import open_bus
from logfactory.bus.base import Bus, BusError, Reachable
from logfactory.config import Config
from logfactory.errors import MissingBusError, NoNodeError
from logfactory.stats import read_all_stats
from logfactory.topics import ensure_topics

__all__ = [
    "DEMO_CONFIG",
    "KAFKA_PROBE_S",
    "LIVE_SNAPSHOT_S",
    "NoNodeError",
    "bus_directory",
    "node_running",
    "open_reader",
    "require_node",
]


LIVE_SNAPSHOT_S = 15.0
"""A node's process counts as running while its pid lives and its stats snapshot (rewritten
every second) is younger than this: the age tells a reused pid from the process that wrote it."""

READER_WAIT_POLL_S = 0.5
"""How often a reader told to wait looks again for a bus that no node has created yet."""

KAFKA_PROBE_S = 5.0
"""How long a reader gives the Kafka brokers to answer before it says that none does."""

DEMO_CONFIG = Path("examples/demo.yaml")
"""The configuration ``make run`` uses, found relative to the working directory."""


def bus_directory(config: Config) -> Path:
    """Where a configuration's local bus lives (``<node.data_dir>/bus``)."""
    return config.data_dir / "bus"


def _where(config: Config) -> str:
    return f"{bus_directory(config).absolute()} (node.data_dir of {config.path})"


def _how_to_start(config: Config) -> str:
    command = f"`logfactory run -c {config.path}`"
    if Path(config.path).resolve() == DEMO_CONFIG.resolve():
        return f"`make run` or {command}"
    return command


def node_running(config: Config) -> bool:
    """Whether a live process of a node writes this configuration's bus.

    On the local bus every node process (``run``, ``collect``, ``serve``, ``factory``) rewrites
    ``<data_dir>/stats/<process>.json`` every second with its pid; a fresh snapshot of a
    running pid is a running node. Other buses cannot tell (a Kafka cluster has writers this
    host knows nothing of), so they always answer True.
    """
    if config.bus.type != "local":
        return True
    now = time.time()
    for snap in read_all_stats(config.data_dir / "stats"):
        written = snap.get("written")
        if (
            snap.get("alive")
            and isinstance(snap.get("pid"), int)
            and snap["pid"] > 0
            and isinstance(written, int | float)
            and now - written < LIVE_SNAPSHOT_S
        ):
            return True
    return False


def require_node(config: Config) -> None:
    """Raise :class:`NoNodeError` unless a node runs on ``config``'s bus (see
    :func:`node_running`); readers call it when they would otherwise wait for new messages."""
    if not node_running(config):
        raise NoNodeError(
            f"no node is running on {_where(config)}, so no new messages can come; start one "
            f"with {_how_to_start(config)}"
        )


def open_reader(config: Config, *, wait: bool = False) -> Bus:
    """The bus a configuration names, opened to read it: a reader never creates one.

    * local: a bus no node has created raises :class:`NoNodeError`; with ``wait`` it is waited
      for (looked for every ``READER_WAIT_POLL_S``). Its topics are ensured exactly as the node
      does, so a reader that opens a bus the instant it appears finds the node's topics (and
      does not create one with other settings before the node gets to it);
    * kafka: a cluster none of whose brokers answers within ``KAFKA_PROBE_S`` raises
      :class:`BusError` (readers otherwise wait on an unreachable cluster without a word);
    * http: an edge ships its records elsewhere and has nothing to read: :class:`BusError`.
    """
    if config.bus.type == "local":
        return _open_local_reader(config, wait)
    if config.bus.type == "http":
        raise BusError(
            f"{config.path}: bus type http only ships records to "
            f"{config.bus.http.url or 'a central node'}; read events on that node"
        )
    bus = open_bus(config)
    try:
        _probe(bus, config)
    except BaseException:
        bus.close()
        raise
    return bus


def _open_local_reader(config: Config, wait: bool) -> Bus:
    while True:
        try:
            bus = open_bus(config, create=False)
        except MissingBusError:
            if not wait:
                raise NoNodeError(
                    f"no bus in {_where(config)}: no node has run with this configuration "
                    f"here; start one with {_how_to_start(config)}"
                ) from None
            time.sleep(READER_WAIT_POLL_S)
            continue
        try:
            ensure_topics(bus, config)
        except BaseException:
            bus.close()
            raise
        return bus


def _probe(bus: Bus, config: Config) -> None:
    """A bus on servers (Kafka) must have one that answers; others always do."""
    if isinstance(bus, Reachable) and not bus.reachable(KAFKA_PROBE_S):
        raise BusError(
            f"no Kafka broker at {bus.address} answered within {KAFKA_PROBE_S:g} s "
            f"(bus.kafka.bootstrap.servers in {config.path}): start the brokers or fix the "
            "address"
        )
