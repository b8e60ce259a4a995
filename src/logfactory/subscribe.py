"""The subscriber SDK: read typed event envelopes straight from the bus.

Applications that run next to a node iterate events without HTTP in between::

    with Subscriber(["ALERT", "JOB_STATUS"], group="pager") as sub:
        for envelope in sub:
            handle(envelope)          # a dict: header / body / params

Delivery with a ``group`` is at-least-once: an event's offset is committed only once the next
event (or the next :meth:`Subscriber.poll` batch) is requested, i.e. after the caller finished
with it (commits are batched: written before the next read from the bus, and on close); after
a crash the unfinished events come again with the same ``header.id``, so de-duplicate on it.
Without a group nothing is committed and each run starts from ``start``.

Readers never create a bus and never wait silently: a local bus that no node has made is an
error (:class:`NoNodeError`, naming the directory and the config), and a reader that has read
everything stored and would wait while no node runs on the bus stops with that error too,
unless it was asked to wait (``wait=True``; ``--wait`` in the CLI).
"""

from __future__ import annotations

import heapq
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import msgspec

from logfactory.bus import open_bus
from logfactory.bus.base import (
    Bus,
    Consumer,
    FencedError,
    Message,
    StartFrom,
    TopicPartition,
    TopicSpec,
)
from logfactory.config import BusConfig, Config, ConfigError, load_config
from logfactory.event import BUILTIN_TYPES, topic_for_type
from logfactory.readers import DEMO_CONFIG, NoNodeError, open_reader, require_node
from logfactory.topics import event_types

__all__ = [
    "DEMO_CONFIG",
    "NoNodeError",
    "Subscriber",
    "find_config",
    "known_types",
    "open_bus",
    "tail",
]

log = logging.getLogger(__name__)

_TYPE_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")
_decode_json = msgspec.json.Decoder(dict[str, Any]).decode


def find_config(path: str | Path | None) -> Config:
    """The node's configuration: ``path``, else ``$LOGFACTORY_CONFIG``, else the demo config.

    Raises :class:`ConfigError` when none is given and none can be found, naming the ways to
    give one, so that a subscriber started in the wrong directory says what to do.
    """
    if path is None:
        env = os.environ.get("LOGFACTORY_CONFIG")
        if env:
            path = env
        elif DEMO_CONFIG.is_file():
            path = DEMO_CONFIG
        else:
            raise ConfigError(
                "no configuration given: pass one (config=... or -c FILE), set "
                "LOGFACTORY_CONFIG=FILE, or run from the project directory where "
                f"{DEMO_CONFIG} exists"
            )
    return load_config(path)


def known_types(config: Config | None) -> list[str]:
    """Built-in event types first, then the site's own from ``event_types``."""
    return list(BUILTIN_TYPES) if config is None else event_types(config)


def tail(
    bus: Bus,
    topic: str,
    *,
    start: StartFrom = "earliest",
    count: int | None = None,
    follow: bool = True,
    on_idle: Callable[[], None] | None = None,
) -> Iterator[Message]:
    """Messages of one topic, like ``tail``; ``count`` always ends it after that many.

    * ``start="earliest"``: from the oldest stored message.
    * ``start="latest"``: the last ``count`` stored messages (none when ``count`` is None),
      oldest first, then (following) new ones until ``count`` in all.

    Without ``follow`` the iterator ends at the end of the topic as it was when called;
    with it, it waits for new messages until ``count`` or until the caller stops iterating.
    ``on_idle`` is called whenever following finds nothing new; it may raise to end the
    iteration (readers pass :func:`require_node`). Partitions are read in parallel, so order
    is guaranteed within a partition only; the backlog of ``latest`` is merged by append time.
    """
    if count is not None and count <= 0:
        return
    consumer = bus.consumer(None, [topic], start)
    try:
        marks = bus.watermarks(topic)
        if start == "latest":
            backlog = _last_stored(consumer, topic, marks, count or 0)
            yield from backlog
            left = None if count is None else count - len(backlog)
            while follow and (left is None or left > 0):
                batch = consumer.poll(500 if left is None else min(500, left), 0.5)
                if not batch and on_idle is not None:
                    on_idle()
                yield from batch
                left = None if left is None else left - len(batch)
            return
        ends = {(topic, p): high for p, (_low, high) in marks.items()}
        yielded = 0
        while True:
            batch = consumer.poll(500, 0.5 if follow else _DRAIN_TIMEOUT)
            if not batch and not follow:
                return
            if not batch and on_idle is not None:
                on_idle()
            for message in batch:
                if not follow and message.offset >= ends.get((topic, message.partition), 0):
                    continue
                yield message
                yielded += 1
                if count is not None and yielded >= count:
                    return
            if not follow and _reached(consumer, ends):
                return
    finally:
        consumer.close()


_DRAIN_TIMEOUT = 0.2
"""How long reading a stored backlog waits for a batch before taking the topic as drained."""


def _reached(consumer: Consumer, ends: dict[TopicPartition, int]) -> bool:
    position = consumer.position()
    return all(position.get(tp, end) >= end for tp, end in ends.items())


def _last_stored(
    consumer: Consumer, topic: str, marks: dict[int, tuple[int, int]], count: int
) -> list[Message]:
    """The newest ``count`` stored messages over all partitions, oldest first; afterwards the
    consumer stands at the end of every partition."""
    ends = {(topic, p): high for p, (_low, high) in marks.items()}
    found: list[Message] = []
    if count > 0:
        for p, (low, high) in marks.items():
            consumer.seek((topic, p), max(low, high - count))
        while True:
            batch = consumer.poll(500, _DRAIN_TIMEOUT)
            found += [m for m in batch if m.offset < ends[(topic, m.partition)]]
            if not batch or _reached(consumer, ends):
                break
    for tp, high in ends.items():
        consumer.seek(tp, high)
    newest = heapq.nlargest(count, found, key=lambda m: (m.timestamp_ms, m.partition, m.offset))
    newest.reverse()
    return newest


ANNOUNCED_MEMORY = 100_000  # NEW_PATTERN ids remembered for de-duplication


class Subscriber:
    """Iterate event envelopes of chosen types from the bus.

    ``config`` is a Config or a path (None: :func:`find_config`); a given ``bus`` is used as is
    and left open on close. ``start`` applies where a group has no committed offset yet (or
    always, without a group). :meth:`close` may be called from another thread to end an
    iteration; it is also what ends ``for envelope in subscriber``.

    Opened from a config, the bus is never created (:func:`open_reader`), and once everything
    stored has been read, :meth:`poll` and iteration raise :class:`NoNodeError` while no node
    runs on the bus (:func:`require_node`), since nothing new can come. ``wait=True`` waits
    instead: for the bus to exist, and then for events, as long as it takes.
    """

    def __init__(
        self,
        types: Sequence[str],
        *,
        config: Config | str | Path | None = None,
        bus: Bus | None = None,
        group: str | None = None,
        start: StartFrom = "latest",
        poll_timeout: float = 0.5,
        wait: bool = False,
    ) -> None:
        names = list(dict.fromkeys(t.strip() for t in types if t.strip()))
        if not names:
            raise ValueError("subscribe to at least one event type")
        if start not in ("earliest", "latest"):
            raise ValueError(f"start must be 'earliest' or 'latest', not {start!r}")
        cfg: Config | None
        if isinstance(config, Config):
            cfg = config
        elif config is not None or bus is None:
            cfg = find_config(config)
        else:
            cfg = None
        known = known_types(cfg)
        for name in names:
            if not _TYPE_NAME.match(name) or (cfg is not None and name not in known):
                raise ValueError(f"unknown event type {name!r}; known types: {', '.join(known)}")
        self.types = names
        self.group = group
        self.poll_timeout = poll_timeout
        self._owns_bus = bus is None
        self._needs_node: Config | None = None  # whose node must run when nothing is left
        self._node_seen_until = 0.0  # monotonic time until which a running node is assumed
        if bus is None:
            assert cfg is not None  # found above whenever no bus was given
            bus = open_reader(cfg, wait=wait)
            self._needs_node = None if wait else cfg
        self._bus: Bus = bus
        partitions = cfg.bus.partitions if cfg is not None else BusConfig().partitions
        topics = [topic_for_type(name) for name in names]
        try:
            for topic in topics:
                self._bus.ensure_topic(TopicSpec(topic, partitions))
            self._consumer = self._bus.consumer(group, topics, start)
        except BaseException:
            if self._owns_bus:
                self._bus.close()
            raise
        self._lock = threading.Lock()
        self._busy = False
        self._closed = False
        self._shut = False
        self._done: dict[TopicPartition, int] = {}  # finished with: safe to commit
        self._handed: dict[TopicPartition, int] = {}  # given to the caller, maybe unfinished
        self.skipped = 0
        """Messages that were not JSON objects (logged and skipped, never fatal)."""
        self._announced: dict[str, None] = {}  # insertion-ordered: the oldest goes first
        self.repeated = 0
        """Repeated NEW_PATTERN announcements dropped (see :meth:`_first_announcement`)."""

    # -- reading ----------------------------------------------------------------------------
    def poll(self, timeout: float | None = None) -> list[dict[str, Any]]:
        """The next envelopes (maybe none) within ``timeout`` seconds; [] once closed.

        Requesting a batch marks the previous batch as finished (committed with a group).
        """
        self._finish_handed()
        self._commit_done()
        messages = self._poll_messages(self.poll_timeout if timeout is None else timeout)
        if not messages:
            self._idle()
        out: list[dict[str, Any]] = []
        for message in messages:
            envelope = self._envelope(message)
            self._handed[(message.topic, message.partition)] = message.offset + 1
            if envelope is not None:
                out.append(envelope)
        return out

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Envelopes one by one until :meth:`close`; see the module doc for commit timing."""
        while not self._closed:
            self._finish_handed()
            self._commit_done()
            messages = self._poll_messages(self.poll_timeout)
            if not messages:
                self._idle()
            for message in messages:
                envelope = self._envelope(message)
                if envelope is not None:
                    self._handed[(message.topic, message.partition)] = message.offset + 1
                    yield envelope
                    self._finish_handed()
                else:
                    self._done[(message.topic, message.partition)] = message.offset + 1
                if self._closed:
                    return

    def _idle(self) -> None:
        """Nothing is left to read: fine while a node runs (checked at most once a second),
        else :class:`NoNodeError`, unless this subscriber waits or was handed its bus."""
        if self._needs_node is None or self._closed:
            return
        now = time.monotonic()
        if now < self._node_seen_until:
            return
        require_node(self._needs_node)
        self._node_seen_until = now + 1.0

    def _envelope(self, message: Message) -> dict[str, Any] | None:
        try:
            envelope = _decode_json(message.value)
        except msgspec.DecodeError as exc:
            self.skipped += 1
            log.warning(
                "skipping %s[%d]@%d: not an event envelope (%s)",
                message.topic,
                message.partition,
                message.offset,
                exc,
            )
            return None
        return envelope if self._first_announcement(envelope) else None

    def _first_announcement(self, envelope: dict[str, Any]) -> bool:
        """False for a NEW_PATTERN whose id was delivered already.

        Two workers that discover one template within their library-sync interval both announce
        it, under the same id (derived from the template); the subscriber shows it once.
        """
        header = envelope.get("header")
        if not isinstance(header, dict) or header.get("type") != "NEW_PATTERN":
            return True
        event_id = header.get("id")
        if not isinstance(event_id, str):
            return True
        seen = self._announced
        if event_id in seen:
            self.repeated += 1
            return False
        seen[event_id] = None
        if len(seen) > ANNOUNCED_MEMORY:
            del seen[next(iter(seen))]
        return True

    def _poll_messages(self, timeout: float) -> list[Message]:
        with self._lock:
            if self._closed:
                return []
            self._busy = True
        try:
            return self._consumer.poll(500, timeout)
        finally:
            with self._lock:
                self._busy = False
                shut = self._closed
            if shut:
                self._shutdown()

    # -- committing -------------------------------------------------------------------------
    def _finish_handed(self) -> None:
        if self._handed:
            self._done.update(self._handed)
            self._handed.clear()

    def _commit_done(self) -> None:
        if self.group is None or not self._done:
            return
        done, self._done = self._done, {}
        try:
            self._consumer.commit(done)
        except FencedError as exc:  # the new owner of the partition redoes the work
            log.warning("commit skipped after a rebalance: %s", exc)

    def commit(self) -> None:
        """Commit everything handed out so far, including the event being handled now."""
        self._finish_handed()
        with self._lock:
            if self._shut:
                return
            self._commit_done()

    # -- closing ----------------------------------------------------------------------------
    def close(self) -> None:
        """Stop: commits finished events, releases the consumer (and the bus if opened here)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            busy = self._busy
        if not busy:  # else the polling thread shuts down once its poll returns
            self._shutdown()

    def _shutdown(self) -> None:
        with self._lock:
            if self._shut:
                return
            self._shut = True
        try:
            self._commit_done()
        finally:
            self._consumer.close()
            if self._owns_bus:
                self._bus.close()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
