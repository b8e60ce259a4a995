"""What a collector source is, as far as the agent is concerned.

A source turns something outside (a file, a socket) into :class:`~logfactory.record.Record` s and
hands each to ``emit`` (or a run of them to ``emit.many``). ``emit`` is awaited: when the bus is
slow it takes longer to return, which is how backpressure reaches the source (a file source
reads less, a TCP source stops reading its sockets) instead of records piling up in memory.

Durability contract for sources that remember where they were (:class:`Checkpointed`): a record
counts as *accepted* once ``await emit(record)`` has returned. The agent periodically takes
``checkpoint()`` (a snapshot of positions up to what was accepted), makes the bus durable
(``producer.flush``), and only then calls ``commit(token)`` with that snapshot. A source therefore
never persists a position for data that could still be lost in the producer's buffer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from logfactory.record import Record

if TYPE_CHECKING:
    from logfactory.collect.sources.file_reconcile import RawLog

__all__ = ["RUN_RECORDS", "Checkpointed", "Emit", "Lagging", "Source", "parse_listen"]

# Records a source hands to ``emit.many`` at once: enough that the per-call cost vanishes, few
# enough that the other sources on the event loop wait at most a few milliseconds.
RUN_RECORDS = 256


class Emit(Protocol):
    """How a source hands records on: ``await emit(record)``, or ``await emit.many(records)``
    for a run of records read together (a file chunk): the same contract, one call, so the
    per-record cost of a coroutine, a lock and a counter is paid once per run."""

    def __call__(self, record: Record, /) -> Awaitable[None]: ...

    def many(self, records: Sequence[Record], /) -> Awaitable[None]: ...


@runtime_checkable
class Source(Protocol):
    name: str

    async def run(self, emit: Emit, stop: asyncio.Event) -> None:
        """Collect until ``stop`` is set, then stop accepting, emit what was accepted, return."""

    async def started(self) -> None:
        """Return once the source listens / watches (raises if it failed to start)."""


@runtime_checkable
class Checkpointed(Protocol):
    """A source whose positions survive a restart; see the module docstring for the order."""

    def checkpoint(self) -> object:
        """Positions of everything emitted so far (cheap; called on the event loop)."""

    async def commit(self, token: object) -> None:
        """Persist ``token`` from :meth:`checkpoint`; called only after the bus flushed it."""


@runtime_checkable
class Reconciling(Protocol):
    """A checkpointed source that, after a crash, moves its positions past the lines it finds on
    the bus already (the file source: see :mod:`.file_reconcile`). The agent hands it
    ``raw_log`` and, at each checkpoint, where ``logs.raw`` ended just before it."""

    raw_log: RawLog | None

    def checkpoint(self, bus_marks: dict[int, int] | None = None) -> object: ...


@runtime_checkable
class Lagging(Protocol):
    """A source that can tell how far behind its input it is.

    ``lag()`` answers ``(amount, unit)``: bytes written to followed files but not yet emitted
    (``"bytes"``), or records accepted from the network or an input topic and not yet handed
    to the bus (``"records"``). The agent publishes it once a second as the gauge
    ``source:<name>:lag_<unit>``; it must be cheap and safe to call from the event loop.
    """

    def lag(self) -> tuple[int, str]: ...


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` -> (host, port); raises ValueError with the reason."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{listen!r} is not HOST:PORT")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)
