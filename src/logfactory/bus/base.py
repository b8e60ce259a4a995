"""The bus contract: what the factory, collectors and subscribers may assume of any bus.

Two implementations honour it (the embedded SQLite log and Apache Kafka) and one contract test
suite (``tests/contract``) holds both to it:

* a topic has a fixed number of partitions; a message with a key always lands in the same
  partition, so one host's records stay in order;
* a consumer in a group owns a disjoint share of the partitions; offsets it commits are where
  the group resumes, and only committed work is ever skipped after a restart;
* a :class:`Transaction` writes outputs and commits input offsets atomically, so a crash either
  loses both or keeps both (exactly once from input to output).

Optional capabilities. Some buses and producers can do more than the contract; each such
capability is a protocol here (:class:`BatchProducer`, :class:`Backlog`, :class:`SpoolState`,
:class:`GroupLag`, :class:`Verifiable`, :class:`Offloading`, :class:`LeanReader`,
:class:`HeadWatch`, :class:`Reachable`). Code outside ``bus/`` checks one with ``isinstance``
once, where it receives the bus or producer (a constructor, the place the bus is opened), and
keeps the bound method or ``None``; it never probes attributes with ``getattr`` at call
sites, and never branches on a concrete bus class.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Protocol, runtime_checkable

from logfactory.errors import BusError, FencedError

__all__ = [
    "Backlog",
    "BatchProducer",
    "Bus",
    "BusError",
    "Consumer",
    "FencedError",
    "GroupLag",
    "HeadReader",
    "HeadWatch",
    "LeanReader",
    "Message",
    "Offloading",
    "Producer",
    "Reachable",
    "SpoolState",
    "StartFrom",
    "TopicPartition",
    "TopicSpec",
    "Transaction",
    "Verifiable",
    "partition_for_key",
]

StartFrom = Literal["earliest", "latest"]
TopicPartition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """How a topic is created. ``compact`` keeps only the newest message per key."""

    name: str
    partitions: int = 1
    compact: bool = False
    retention_ms: int | None = None
    retention_bytes: int | None = None


def partition_for_key(key: bytes | None, partitions: int, counter: int = 0) -> int:
    """Stable partition of a key, the same in every process (Python's ``hash`` is salted)."""
    if key is None:
        return counter % partitions
    return zlib.crc32(key) % partitions


class Producer(Protocol):
    def produce(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        """Queue a message. It is durable only once :meth:`flush` has returned."""

    def flush(self, timeout: float | None = None) -> None:
        """Block until every message produced before the call is durable; raise if not possible."""

    def close(self) -> None: ...


class Consumer(Protocol):
    @property
    def group(self) -> str | None: ...

    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Message]:
        """Up to ``max_records`` messages, waiting at most ``timeout`` seconds for the first."""

    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Commit next-offsets to read (default: everything returned by poll so far).

        Raises :class:`FencedError` (and commits nothing) if this member no longer owns one of
        the partitions; a no-op for a consumer without a group.
        """

    def epochs(self) -> dict[TopicPartition, int]:
        """Per assigned partition, a number that changes whenever this member (re)gains it.

        Per-partition state kept in memory is valid only while its epoch is unchanged: between
        two polls a partition may have gone to another member and come back.
        """

    def position(self) -> dict[TopicPartition, int]:
        """Next offset this consumer will read, per assigned partition."""

    def assignment(self) -> list[TopicPartition]: ...

    def seek(self, tp: TopicPartition, offset: int) -> None: ...

    def close(self) -> None: ...


class Transaction(Protocol):
    """Outputs and input offsets that become durable together, or not at all.

    Nothing is visible before the ``with`` block ends. An exception inside it discards
    everything; a :class:`FencedError` at its end (the consumer lost a partition whose offset
    it commits) means nothing was written either.
    """

    def produce(self, topic: str, value: bytes, key: bytes | None = None) -> None: ...

    def commit_offsets(self, offsets: Mapping[TopicPartition, int]) -> None: ...

    def __enter__(self) -> Transaction: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class Bus(Protocol):
    def ensure_topic(self, spec: TopicSpec) -> int:
        """Create the topic if missing; return its partition count."""

    def topics(self) -> dict[str, int]: ...

    def producer(self, *, patient: bool = False) -> Producer:
        """A producer. ``patient``: deliveries never time out (a collector in front of a
        spool, which would rather wait for the bus than lose what it handed over); a bus
        without such timeouts ignores it."""

    def consumer(
        self,
        group: str | None,
        topics: Sequence[str],
        start: StartFrom = "earliest",
    ) -> Consumer:
        """A consumer; ``group=None`` reads every partition and commits nowhere (like kcat -C)."""

    def transaction(self, consumer: Consumer) -> Transaction:
        """A transaction whose offset commits are fenced against ``consumer``'s ownership.

        When the block has ended, readers see its outputs (on Kafka this waits for the
        commit markers): the next owner of a partition must find the state its predecessor
        committed with the offsets it resumes from.
        """

    def watermarks(self, topic: str) -> dict[int, tuple[int, int]]:
        """Per partition, (lowest offset still stored, next offset to be written)."""

    def committed(self, group: str, topic: str) -> dict[int, int]: ...

    def groups(self) -> list[str]: ...

    def maintain(self) -> dict[str, int]:
        """Apply retention and compaction; return how many messages each topic dropped.

        Offsets of the remaining messages never change and new ones continue after the old
        high watermark; a group whose committed offset was deleted resumes at the low one.
        """

    def close(self) -> None: ...


# -- optional capabilities (see the module docstring) --------------------------------------------


@runtime_checkable
class BatchProducer(Protocol):
    """A producer that takes a run of messages for one topic in one call (the local bus's
    offloading producer): a collector hands a file chunk's lines over at once."""

    def produce_many(
        self, topic: str, values: Sequence[bytes], keys: Sequence[bytes | None]
    ) -> None: ...


@runtime_checkable
class Backlog(Protocol):
    """A producer that counts what it was given and has not written yet."""

    def pending(self) -> int: ...


@runtime_checkable
class SpoolState(Protocol):
    """A producer with a spool in front of the bus; ``state()`` holds at least ``bytes`` and
    ``max_bytes`` of what it spooled (:class:`logfactory.collect.spool.Spool`)."""

    def state(self) -> dict[str, Any]: ...


@runtime_checkable
class GroupLag(Protocol):
    """A bus that computes a group's lag per topic itself (cheaper than watermarks minus
    committed offsets, topic by topic)."""

    def lag(self, group: str) -> dict[str, int]: ...


@runtime_checkable
class Verifiable(Protocol):
    """A bus whose storage can be checked for damage; raises :class:`DamagedBusError`."""

    def verify(self) -> None: ...


@runtime_checkable
class Offloading(Protocol):
    """A bus whose producer can do its writing in a process of its own, so that a busy
    producing process (a node running collectors) keeps its core."""

    def offload_producer(self) -> Producer: ...


@runtime_checkable
class LeanReader(Protocol):
    """A consumer that can read through a small cache: for one of many readers that each
    pass over the data once, like SSE streams."""

    def lean(self) -> None: ...


class HeadReader(Protocol):
    """A cheap view of a bus's write heads (see :class:`HeadWatch`)."""

    def data_version(self) -> int:
        """A number that changes whenever anything was written to the bus."""

    def heads(self) -> dict[str, int]:
        """Per topic, a number that changes whenever the topic was written to."""

    def close(self) -> None: ...


@runtime_checkable
class HeadWatch(Protocol):
    """A bus that can tell cheaply which topics were written to (the embedded bus: one
    SQLite pragma, no I/O), so idle readers wait for a change instead of polling."""

    def head_reader(self) -> HeadReader: ...


@runtime_checkable
class Reachable(Protocol):
    """A bus on servers that may not answer: ``reachable`` asks them, waiting at most
    ``timeout`` seconds; ``address`` says where they were looked for."""

    @property
    def address(self) -> str: ...

    def reachable(self, timeout: float) -> bool: ...
