"""What the collector's spool tells people about a bus outage.

:class:`~logfactory.collect.spool.SpoolingProducer` switches modes; this says so, in the places
an operator looks: while the bus does not take records (down, or too slow to confirm them
within ``collector.spool_flush_timeout``) one open problem on the health page (``spool``:
since when, where to, the last bus error), cleared when the spool has drained; the spool's
``spooled``/``resent`` counters and ``spool.records``/``spool.bytes`` gauges in the stats
registry; and a failing spool disk in the log once per distinct error, although it is retried
every ``retry_interval``.

Not locked: the producer calls :meth:`SpoolHealth.outage` and :meth:`SpoolHealth.recovered`
under the lock it reads ``error`` and ``since`` with.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from logfactory.bus.base import BusError
from logfactory.stats import StatsRegistry

__all__ = ["SpoolHealth"]

# logged as the spool, under the logger name it had before this module was split off
log = logging.getLogger("logfactory.collect.spool")


class SpoolHealth:
    """The reporting side of the spool at ``path``; ``registry`` may be None (nothing shown)."""

    def __init__(self, path: Path, registry: StatsRegistry | None) -> None:
        self.path = path
        self.registry = registry
        self.error: str | None = None  # the last bus error while spooling
        self.since: float | None = None  # epoch seconds: when spooling started
        self._disk_error: str | None = None

    def outage(self, reason: str) -> None:
        """The bus (still) does not take records: ``reason`` is the latest word on why."""
        self.error = reason
        if self.since is None:
            self.since = time.time()
        if self.registry is not None:
            since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.since))
            self.registry.problem(
                "spool", f"bus not taking records since {since}, spooling to {self.path}: {reason}"
            )

    def recovered(self) -> None:
        """The spool drained and messages go to the bus directly again."""
        self.error = self.since = None
        if self.registry is not None:
            self.registry.problem("spool", None)

    def publish(self, records: int, size: int, spooled: int = 0, resent: int = 0) -> None:
        """Count ``spooled``/``resent`` messages; set the gauges to what the spool holds."""
        registry = self.registry
        if registry is None:
            return
        if spooled or resent:
            registry.add_many("spool", spooled=spooled, resent=resent)
        registry.gauge("spool.records", records)
        registry.gauge("spool.bytes", size)

    def disk_error(self, exc: BusError) -> None:
        """Once per distinct error: a failing disk is retried every ``retry_interval``."""
        text = str(exc)
        if text != self._disk_error:
            self._disk_error = text
            log.error("%s (retrying)", text)
