"""What every source is built from, besides its own configuration struct.

Why one object: a source type's constructor is ``(config, ctx)`` for every type, so the
registry (:mod:`.build`) builds any of them the same way, and a new thing the node hands its
sources (a clock, a metrics sink) is one field here instead of a new keyword on every
constructor and every call site. What a source type alone needs is in its configuration
struct; what the node knows is here.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from logfactory.config import NodeConfig
from logfactory.record import now_ns
from logfactory.stats import StatsRegistry

if TYPE_CHECKING:
    from logfactory.collect.sources.file_reconcile import RawLog

__all__ = ["SourceContext"]


@dataclass(frozen=True, slots=True)
class SourceContext:
    """The node's side of a source.

    Attributes:
        data_dir: the node's data directory (saved positions, SNMP engine ids, TLS keys)
        registry: where the source counts (``source:<name>``: rejected, dropped, errors)
        hostname: the collecting host: the ``host`` of records that name none, and the name
            in a self-signed TLS certificate (default: this machine's)
        node: the node's settings (its name, the time zone of the demo feed's lines)
        raw_log: ``logs.raw`` read back from the bus, for sources that reconcile their
            positions with it after a crash (the file source); None when it cannot be read
        name: the source's name, unique in its agent (default: the config's ``name``, else
            its type)
        clock: the receive time of what arrives now, in ns since the epoch (the wall clock;
            a test gives a fixed one and asserts the records' ``received``)
    """

    data_dir: Path
    registry: StatsRegistry = field(default_factory=lambda: StatsRegistry("collector"))
    hostname: str = field(default_factory=socket.gethostname)
    node: NodeConfig = field(default_factory=NodeConfig)
    raw_log: RawLog | None = None
    name: str | None = None
    clock: Callable[[], int] = now_ns

    def named(self, name: str) -> SourceContext:
        """This context for the source called ``name``."""
        return dataclasses.replace(self, name=name)
