"""The Kafka input source: consume topics on a site's own Kafka cluster into ``logs.raw``.

For sites that already ship their logs to Kafka. The cluster is the site's (``kafka:`` holds
librdkafka consumer keys, ``bootstrap.servers`` at least), not necessarily our bus, so this talks
to confluent-kafka directly. Each message value becomes one Record: the bytes are the line
(decoded as UTF-8; invalid bytes are replaced for reading and kept verbatim in ``raw``), with
``meta`` = topic, partition, offset and key. Messages without a value (tombstones) are counted
as ``rejected``. ``host_from`` picks the host: ``key`` (the message key), ``field:NAME`` (a
field of a JSON object value) or any other text as a fixed host; ``-`` when absent.

Durability (``base.Checkpointed``): offsets are committed to the *source* cluster, synchronously,
only after the records are durable on our bus: :meth:`KafkaInputSource.checkpoint` snapshots the
next offset per partition of every fully emitted batch, the agent flushes the bus, and
:meth:`KafkaInputSource.commit` commits that snapshot. Auto-commit is always off. A crash or a
failed commit therefore re-delivers at most what was emitted since the last successful commit
(at-least-once), and never skips. A rebalance can also re-deliver: records of a partition
taken from us are still emitted, and its new owner starts at the last committed offset.

``start_at`` (beginning | end) applies only to a group without committed offsets
(``auto.offset.reset``); ``group`` defaults to ``logfactory-<name>``.

Logging: a broker that is down makes librdkafka report every failed connection (about 20 a
second) and our error callback hear each; both go through one :class:`RateLimitedLog` per source,
so each distinct message is logged once, then at most every ``ERROR_LOG_INTERVAL_S`` with the
count left out. The ``errors`` counter still counts every one.

Threads: one thread consumes in batches and hands them to the event loop through a queue of
``QUEUE_BATCHES`` batches, so a slow bus stops the consumer instead of filling memory. Consume,
commit and close share a lock (confluent-kafka's consumer is not meant for concurrent calls).
After a clean stop the consumer stays in the group until the agent's final commit (a
checkpoint taken once :meth:`run` has returned), which commits and then closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
from typing import Any

import msgspec
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from logfactory.collect.ratelimit_log import RateLimitedLog
from logfactory.collect.sources.base import Emit
from logfactory.collect.sources.context import SourceContext
from logfactory.config import KafkaSourceConfig
from logfactory.record import Record, make_record

__all__ = ["KafkaInputSource"]

log = logging.getLogger(__name__)

QUEUE_BATCHES = 4
ERROR_LOG_INTERVAL_S = 30.0
# what varies between repeats of one librdkafka message: "(after 0ms in state CONNECT)",
# "(after 3ms in state CONNECT, 4 identical error(s) suppressed)"
_VARYING = re.compile(r"\s*\(after \d+ms in state [^)]*\)")
_TRANSIENT = frozenset({KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE})
_Offsets = dict[tuple[str, int], int]
_Batch = tuple[list[Record], _Offsets]


class KafkaInputSource:
    """Consumes ``config.topics``; see the module docstring for the contract."""

    def __init__(
        self,
        config: KafkaSourceConfig,
        ctx: SourceContext,
        *,
        batch_size: int = 500,
        poll_timeout: float = 0.1,
    ) -> None:
        if not config.kafka.get("bootstrap.servers"):
            raise ValueError("a kafka source needs 'kafka: {bootstrap.servers: HOST:PORT,...}'")
        if not config.topics:
            raise ValueError("a kafka source needs 'topics': a list of topic names")
        self.name = ctx.name or config.name or "kafka"
        self.tag = config.tag or "kafka"
        self.registry = ctx.registry
        self._clock = ctx.clock
        self._log = RateLimitedLog(log, ERROR_LOG_INTERVAL_S)
        self.group_counters = f"source:{self.name}"
        self.topics = list(config.topics)
        self.group = config.group or f"logfactory-{self.name}"
        self.batch_size = batch_size
        self.poll_timeout = poll_timeout
        host_from = config.host_from
        self._host_key = host_from == "key"
        self._host_field = host_from[6:] if host_from.startswith("field:") else None
        if self._host_field == "":
            raise ValueError("host_from: field:NAME needs a field name")
        self._host_fixed = None if self._host_key or self._host_field else host_from
        self.settings: dict[str, Any] = {
            **config.kafka,
            "group.id": self.group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest" if config.start_at == "beginning" else "latest",
            "error_cb": self._on_error,
            "logger": _LibrdkafkaLog(self._log),
        }
        self._consumer: Consumer | None = None
        self._lock = threading.Lock()
        self._halt = threading.Event()  # stop consuming (clean stop)
        self._abort = threading.Event()  # run() was cancelled: close without committing
        self._slots = threading.Semaphore(QUEUE_BATCHES)
        self._next: _Offsets = {}  # next offset per partition, for fully emitted batches
        self._committed: _Offsets = {}
        self._finished = False
        self._problem_shown = False
        self._behind: _Offsets = {}  # per partition: the topic's end minus our next offset
        self._queued = 0  # records handed to the event loop, not yet emitted
        self._ready = asyncio.Event()
        self._error: BaseException | None = None

    async def started(self) -> None:
        await self._ready.wait()
        if self._error is not None:
            raise self._error

    # -- the loop --------------------------------------------------------------------------
    async def run(self, emit: Emit, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._consumer = await loop.run_in_executor(None, self._open)
        except BaseException as exc:
            self._error = exc
            raise
        finally:
            self._ready.set()
        queue: asyncio.Queue[_Batch | None] = asyncio.Queue()
        thread = threading.Thread(
            target=self._consume_loop, args=(loop, queue), name=f"kafka-in-{self.name}",
            daemon=True,
        )  # fmt: skip
        thread.start()
        halt = asyncio.create_task(self._halt_on(stop))
        try:
            while (batch := await queue.get()) is not None:
                records, offsets = batch
                for record in records:
                    await emit(record)
                    self._queued -= 1
                self._next.update(offsets)
                self._slots.release()
            self._finished = True
        except BaseException:
            self._abort.set()
            self._halt.set()
            raise
        finally:
            halt.cancel()

    async def _halt_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._halt.set()

    def _open(self) -> Consumer:
        consumer = Consumer(self.settings)
        consumer.subscribe(self.topics)
        return consumer

    def _on_error(self, err: object) -> None:
        """Count every error; log and show as a problem only the ones that stop consuming
        (librdkafka already logs each failed connection attempt through ``logger``)."""
        self.registry.add(self.group_counters, "errors")
        if isinstance(err, KafkaError) and not err.fatal() and err.code() in _TRANSIENT:
            log.debug("kafka source %r: %s", self.name, err)
            if err.code() == KafkaError._ALL_BROKERS_DOWN:
                self._problem_shown = True
                self.registry.problem(self.group_counters, f"kafka source: {err.str()}")
            return
        key = (err.code(), err.str()) if isinstance(err, KafkaError) else (type(err), str(err))
        self._log.warning(key, "kafka source %r: %s", self.name, err)

    # -- the consumer thread ---------------------------------------------------------------
    def _consume_loop(
        self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[_Batch | None]
    ) -> None:
        consumer = self._consumer
        assert consumer is not None
        try:
            while not self._halt.is_set():
                try:
                    with self._lock:
                        messages = consumer.consume(self.batch_size, self.poll_timeout)
                        if messages:
                            self._measure_lag(consumer, messages)
                except Exception as exc:  # fatal consumer errors: report, keep trying
                    self._on_error(exc)
                    self._halt.wait(1.0)
                    continue
                if not messages:
                    continue
                if self._problem_shown:
                    self._problem_shown = False
                    self.registry.problem(self.group_counters, None)
                batch = self._to_batch(messages)
                while not self._slots.acquire(timeout=0.2):
                    if self._abort.is_set():
                        return
                loop.call_soon_threadsafe(self._enqueue, queue, batch)
        finally:
            if self._abort.is_set():
                self.close()
            else:
                with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                    loop.call_soon_threadsafe(queue.put_nowait, None)

    def _enqueue(self, queue: asyncio.Queue[_Batch | None], batch: _Batch) -> None:
        self._queued += len(batch[0])  # on the event loop, like the decrements in run()
        queue.put_nowait(batch)

    def _measure_lag(self, consumer: Consumer, messages: list[Message]) -> None:
        """Per partition in the batch: the end offset the last fetch reported (cached by
        librdkafka, so no request) minus the offset after the last message received."""
        last: _Offsets = {}
        for msg in messages:
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            if msg.error() is None and topic is not None and partition is not None:
                last[(topic, partition)] = (offset or 0) + 1
        for (topic, partition), nxt in last.items():
            try:
                _lo, hi = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), cached=True
                )
            except KafkaException:  # no fetch answer cached yet: keep the previous figure
                continue
            if hi is not None and hi >= 0:
                self._behind[(topic, partition)] = max(0, int(hi) - nxt)

    def lag(self) -> tuple[int, str]:
        """Records on the input topics beyond what this source has received, plus records
        received and not yet handed to the bus (as of the last fetch)."""
        return sum(self._behind.values()) + self._queued, "records"

    def _to_batch(self, messages: list[Message]) -> _Batch:
        records: list[Record] = []
        offsets: _Offsets = {}
        rejected = 0
        tag, fixed, field = self.tag, self._host_fixed, self._host_field
        received = self._clock()  # one poll, one receive time
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    self._on_error(err)
                continue
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            assert topic is not None
            assert partition is not None
            assert offset is not None
            offsets[(topic, partition)] = offset + 1
            value = msg.value()
            if value is None:
                rejected += 1
                continue
            rawkey = msg.key()
            key = rawkey.decode("utf-8", "replace") if isinstance(rawkey, bytes) else rawkey
            meta: dict[str, Any] = {"topic": topic, "partition": partition, "offset": offset}
            if key is not None:
                meta["key"] = key
            if fixed is not None:
                host = fixed
            elif field is not None:
                host = _json_field(value, field)
            else:
                host = key or "-"
            records.append(make_record(tag, host, value, meta, received))
        if rejected:
            self.registry.add(self.group_counters, "rejected", rejected)
        return records, offsets

    # -- offsets ---------------------------------------------------------------------------
    def checkpoint(self) -> object:
        """Next offsets of every fully emitted batch; ``final`` once :meth:`run` has returned."""
        return dict(self._next), self._finished

    async def commit(self, token: object) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._commit, token)

    def _commit(self, token: object) -> None:
        assert isinstance(token, tuple)
        offsets, final = token
        changed = [
            TopicPartition(t, p, o) for (t, p), o in offsets.items()
            if self._committed.get((t, p)) != o
        ]  # fmt: skip
        try:
            if changed:
                self._commit_offsets(changed)
        finally:
            if final:
                self.close()

    def _commit_offsets(self, changed: list[TopicPartition]) -> None:
        with self._lock:
            consumer = self._consumer
            if consumer is None:
                return
            try:
                result = consumer.commit(offsets=changed, asynchronous=False) or []
            except KafkaException as exc:
                # the next checkpoint retries; until then a restart re-reads, never skips
                self._on_error(exc.args[0] if exc.args else exc)
                return
        for tp in result:
            if tp.error is None:
                self._committed[(tp.topic, tp.partition)] = tp.offset
            else:
                self._on_error(tp.error)

    def close(self) -> None:
        """Leave the group (idempotent); uncommitted offsets stay uncommitted."""
        with self._lock:
            consumer, self._consumer = self._consumer, None
        if consumer is not None:
            try:
                consumer.close()
            except Exception as exc:
                log.warning("kafka source %r: closing the consumer: %s", self.name, exc)


class _LibrdkafkaLog:
    """librdkafka's ``logger``: confluent-kafka calls ``log(level, fmt, *args)`` on it from
    the consumer's thread; each distinct message goes through the source's rate limit."""

    def __init__(self, limited: RateLimitedLog) -> None:
        self._limited = limited

    def log(self, level: int, msg: str, *args: object) -> None:
        try:
            text = msg % args if args else msg
        except (TypeError, ValueError):  # not the format confluent-kafka passes today
            text = " ".join(map(str, (msg, *args)))
        self._limited.log(level, _VARYING.sub("", text), "%s", text)


def _json_field(value: bytes, field: str) -> str:
    """``host_from: field:NAME``: the field of a JSON object value, ``-`` if there is none."""
    try:
        doc = msgspec.json.decode(value)
    except msgspec.DecodeError:
        return "-"
    if isinstance(doc, dict):
        host = doc.get(field)
        if host is not None and host != "":
            return host if isinstance(host, str) else str(host)
    return "-"
