"""The demo feed: realistic logs of a small HPC centre, generated here rather than copied.

:class:`DemoGenerator` is the pure, synchronous and (with a seed) deterministic core that tests and
benchmarks use; :class:`DemoSource` paces it against the wall clock as a collector source.

The generator runs on *simulated* time: line ``i`` happens at ``start_ns + i / rate``. Periodic
scenarios (cluster heartbeats, password-guessing bursts, alerts, admin operations, application
changes, never-seen messages, a torn heartbeat for the dead-letter topic) and the later steps of
multi-line stories (a job's allocation and end, an ssh session's close) wait in a heap keyed by
due time; every slot with nothing due is filled with weighted background traffic. This keeps
the promise the demo makes to a subscriber joining late: every kind appears in the first ~20 s
and each event type recurs at least every ~30 s, whatever the seed. Emitted tags: ``syslog``
(sshd, kernel, slurmctld and other daemons as RFC 3164 lines with PRI), ``sce``
(``|``-delimited grid middleware operations), ``apps`` and ``cluster`` (JSON lines).

The stories themselves live in :mod:`.demo_stories` and the vocabulary and wire formats in
:mod:`.demo_catalogue`; this module owns the clock, the mix and the public API.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from logfactory.collect.sources.context import SourceContext
from logfactory.collect.sources.demo_catalogue import SEC, Line
from logfactory.collect.sources.demo_stories import Step, Stories
from logfactory.config import DemoSourceConfig
from logfactory.record import Record

__all__ = ["DemoGenerator", "DemoSource"]


class DemoGenerator(Stories):
    """Deterministic (given ``seed``) stream of ``(tag, host, line)`` over simulated time.

    ``hosts`` is the number of compute nodes (``cn01``...); login nodes ``login01``/``login02`` and
    the controller ``mgmt01`` always exist. Syslog timestamps are written in ``timezone`` (RFC 3164
    has no zone); every other format writes UTC. Cheap enough for benchmark input (~a few us/line).
    """

    def __init__(
        self,
        seed: int | None = None,
        hosts: int = 8,
        start_ns: int | None = None,
        *,
        rate: float = 50.0,
        timezone: str = "UTC",
        syslog_tag: str = "syslog",
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be positive lines/s, not {rate!r}")
        if hosts < 1:
            raise ValueError(f"hosts must be at least 1, not {hosts!r}")
        s = start_ns if start_ns is not None else time.time_ns()
        super().__init__(random.Random(seed), hosts, s, timezone, syslog_tag)
        self._step = SEC / rate
        self._start = s
        self._index = 0
        fill: list[Step] = []
        weights: tuple[tuple[int, Step], ...] = (
            (24, self._system_noise), (12, self._kernel_noise), (8, self._sce_user),
            (3, self._ssh_login), (3, self._ssh_probe), (2, self._job_submit),
        )  # fmt: skip
        for weight, step in weights:
            fill += [step] * weight
        self._fill = tuple(fill)
        # Every kind early (all within ~16 s); the periodic ones then reschedule themselves.
        first: tuple[tuple[float, Step, Any], ...] = (
            (0.2, self._ssh_login, True), (0.5, self._heartbeat, 0), (0.7, self._sce_user, None),
            (1.0, self._job_submit, None), (1.5, self._kernel_noise, None),
            (2.0, self._system_noise, None), (2.5, self._novel, True), (3.0, self._sce_admin, None),
            (3.5, self._ssh_probe, None), (4.0, self._app_change, None), (4.2, self._heartbeat, 1),
            (4.5, self._ssh_typo, None), (5.0, self._oom, None), (6.0, self._segfault, None),
            (7.0, self._overheat, None), (8.0, self._attack_burst, None),
            (9.0, self._disk_full, None), (9.5, self._novel, False), (13.0, self._novel, False),
            (16.0, self._novel, False), (18.0, self._torn_heartbeat, None),
        )  # fmt: skip
        for at, step, arg in first:
            self._at(s + int(at * SEC), step, arg)

    # -- public iteration ------------------------------------------------------------------
    def timed(self) -> Iterator[tuple[int, str, str, str]]:
        """Endless ``(time_ns, tag, host, line)``; ``time_ns`` is the simulated time of the line."""
        heap, fill, rng = self._heap, self._fill, self._rng
        pop, n_fill = heapq.heappop, len(fill)
        start, interval = self._start, self._step
        while True:
            t = start + int(self._index * interval)
            self._index += 1
            if heap and heap[0][0] <= t:
                _, _, step, arg = pop(heap)
                yield (t, *step(t, arg))
            else:
                yield (t, *fill[int(rng.random() * n_fill)](t, None))

    @property
    def next_ns(self) -> int:
        """Simulated time of the next line."""
        return self._start + int(self._index * self._step)

    def lines(self, n: int | None = None, until_ns: int | None = None) -> Iterator[Line]:
        """The next ``n`` lines, or those before simulated ``until_ns`` (endless if neither).
        Stopping consumes nothing: a later call continues with the very next line."""
        timed = self.timed()
        left = -1 if n is None else n
        while left != 0 and (until_ns is None or self.next_ns < until_ns):
            left -= 1
            _, tag, host, line = next(timed)
            yield tag, host, line


class DemoSource:
    """A collector source that plays :class:`DemoGenerator` in real time (``rate`` lines/s).

    Config: ``rate``, ``hosts`` (compute nodes), ``seed`` (deterministic content when set) and
    ``tag`` (the tag of the syslog-format lines, default ``syslog``; the other tags are fixed:
    ``sce``, ``apps``, ``cluster``). Lines carry the current time. If ``emit`` falls behind, lines
    go out back to back until the feed has caught up with the clock. Syslog times are written
    in the node's time zone (``ctx.node.timezone``).
    """

    def __init__(self, config: DemoSourceConfig, ctx: SourceContext) -> None:
        self.name = ctx.name or config.name or "demo"
        self._config = config
        self._node = node = ctx.node
        self._ready = asyncio.Event()
        # fail at construction (bad rate, hosts or time zone), not inside the running task
        DemoGenerator(config.seed, config.hosts, 0, rate=config.rate, timezone=node.timezone)

    async def started(self) -> None:
        """Returns once :meth:`run` is producing lines."""
        await self._ready.wait()

    async def run(self, emit: Callable[[Record], Awaitable[None]], stop: asyncio.Event) -> None:
        c = self._config
        gen = DemoGenerator(
            c.seed, c.hosts, time.time_ns(), rate=c.rate, timezone=self._node.timezone,
            syslog_tag=c.tag or "syslog",
        )  # fmt: skip
        lines = gen.timed()
        due, tag, host, line = next(lines)
        self._ready.set()
        while not stop.is_set():
            now = time.time_ns()
            burst = 0
            while due <= now and not stop.is_set():
                await emit(Record(source=tag, host=host, received=time.time_ns(), line=line))
                due, tag, host, line = next(lines)
                burst += 1
                if burst % 512 == 0:
                    await asyncio.sleep(0)  # let the loop breathe while catching up
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(0.0, (due - now) / SEC))
