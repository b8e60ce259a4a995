"""The pump between a listener's callbacks and ``emit``, shared by the network sources.

Protocol callbacks (asyncio's for syslog, raw and RELP; pysnmp's for SNMP) cannot await, so
those sources append Records to one queue and wake one task that hands them on in runs of up to
:data:`~.base.RUN_RECORDS`. This module is that task's loop, in one copy, so that its stop
semantics are the same for every listener: the pump returns as soon as ``stop`` is set (between
runs, never inside ``send``), and what is still queued then is the source's to hand on with
:func:`drain` once its listeners are closed, so nothing is added behind it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

from logfactory.collect.sources.base import RUN_RECORDS
from logfactory.record import Record

__all__ = ["Send", "drain", "pump", "take_run"]

Send = Callable[[list[Record]], Awaitable[None]]


def take_run(queue: deque[Record]) -> list[Record]:
    """Up to ``RUN_RECORDS`` records from the front of ``queue``."""
    if len(queue) <= RUN_RECORDS:
        run = list(queue)
        queue.clear()
        return run
    popleft = queue.popleft
    return [popleft() for _ in range(RUN_RECORDS)]


async def pump(queue: deque[Record], wake: asyncio.Event, stop: asyncio.Event, send: Send) -> None:
    """Hand ``queue``'s records to ``send`` in runs until ``stop`` is set.

    Whoever appends to ``queue`` sets ``wake``; setting ``stop`` wakes the pump too. ``send``
    is the source's ``emit.many`` plus what it does after each run (resume paused readers,
    note what was emitted)."""

    async def watch() -> None:
        await stop.wait()
        wake.set()

    watcher = asyncio.create_task(watch())
    try:
        while not stop.is_set():
            while queue:
                await send(take_run(queue))
                if stop.is_set():
                    return
            wake.clear()
            if not queue and not stop.is_set():
                await wake.wait()
    finally:
        watcher.cancel()


async def drain(queue: deque[Record], send: Send) -> None:
    """Hand on everything left in ``queue`` (at stop, once nothing more is appended)."""
    while queue:
        await send(take_run(queue))
