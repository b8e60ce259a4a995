"""The bus of an edge collector that ships its records to a central node over HTTP.

Why: an edge host often may reach the central node's API (one HTTPS port through the
firewall) but not a Kafka cluster. ``bus: {type: http, http: {url: ..., token: ...}}`` makes
``logfactory collect`` post what it would have written to ``logs.raw`` to the central node's
``POST /api/v1/ingest``, as the encoded records themselves (media type :data:`RECORDS_MEDIA`:
a zstd'd msgpack array of ``[key, value]``), so source tag, host, receive time and metadata
arrive exactly as the edge made them and the central node writes them to its bus unchanged.

Delivery: one sender thread posts batches in produce order and takes a batch off its queue
only when the central node answered 200, which it does once the records are durable there.
Until then the batch is retried - after ``Retry-After`` on 429/503, in halves on 413 (the
central node takes smaller bodies), with a growing pause on network errors and other answers -
and never dropped: the collector's spool
(:mod:`logfactory.collect.spool`) writes to disk whatever :meth:`HttpShipProducer.flush` could
not confirm in time and sends it once the central node answers again. A batch whose answer was
lost is sent again (at least once, like any HTTP client that retries).

Only producing exists here: consumers, transactions and offsets live on the central node's bus,
so those calls raise :class:`~logfactory.bus.base.BusError` naming the fix.
"""

from __future__ import annotations

import http.client
import ssl
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec
import zstandard

from logfactory.bus.base import BusError, Consumer, Producer, StartFrom, TopicSpec, Transaction
from logfactory.topic_names import RAW

__all__ = ["RECORDS_MEDIA", "HttpShipBus", "HttpShipProducer", "ShipTarget"]

#: the body of a shipped batch: zstd'd msgpack ``[[key, value], ...]``, values encoded Records
RECORDS_MEDIA = "application/vnd.logfactory.records+msgpack"
BATCH_RECORDS = 5000
BATCH_BYTES = 4 << 20  # raw; the central node's default max_body_bytes is larger than this zstd'd
_MAX_PAUSE_S = 5.0
_FLUSH_DEFAULT_S = 60.0


@dataclass(frozen=True, slots=True)
class ShipTarget:
    """Where and how to post: ``url`` of the central node's ingest endpoint."""

    url: str
    token: str | None = None
    ca_file: str | None = None
    verify: bool = True
    timeout: float = 30.0
    client_cert: str | None = None  # with client_key: shown to a central node asking for one
    client_key: str | None = None


def _client_context(target: ShipTarget) -> ssl.SSLContext:
    """TLS 1.2 or later, trusting ``ca_file`` (else the system CAs), showing the client
    certificate when one is configured. A file that cannot be loaded raises
    :class:`BusError` naming its key, so the collector refuses to start instead of failing
    every post."""
    try:
        context = ssl.create_default_context(cafile=target.ca_file)
    except OSError as exc:  # ssl.SSLError is one too
        raise BusError(
            f"bus.http.ca_file {target.ca_file}: cannot load it: {exc.strerror or exc}"
        ) from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not target.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if target.client_cert is not None:
        try:
            context.load_cert_chain(target.client_cert, target.client_key)
        except OSError as exc:
            raise BusError(
                f"bus.http.client_cert {target.client_cert}: cannot load it with the key "
                f"{target.client_key}: {exc.strerror or exc}; give the PEM certificate this "
                "collector shows the central node and its private key"
            ) from exc
    return context


class _Endpoint:
    """The parsed ``url`` of a target: a bad one is an error when the producer is made."""

    def __init__(self, target: ShipTarget) -> None:
        parts = urllib.parse.urlsplit(target.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BusError(f"bus.http.url {target.url!r}: use http(s)://HOST:PORT/api/v1/ingest")
        self.host, self.port, self.timeout = parts.hostname, parts.port, target.timeout
        self.path = (parts.path or "/api/v1/ingest") + (f"?{parts.query}" if parts.query else "")
        self.context: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self.context = _client_context(target)

    def connect(self) -> http.client.HTTPConnection:
        if self.context is None:
            return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return http.client.HTTPSConnection(
            self.host, self.port, timeout=self.timeout, context=self.context
        )


class HttpShipProducer:
    """A :class:`~logfactory.bus.base.Producer` for ``logs.raw`` that posts to a central node.

    ``pending()`` counts records produced and not yet answered with 200.
    """

    def __init__(self, target: ShipTarget) -> None:
        self.target = target
        self._endpoint = _Endpoint(target)
        self._cond = threading.Condition()
        self._queue: deque[tuple[bytes | None, bytes]] = deque()
        self._produced = 0
        self._acked = 0
        self._error: str | None = None  # the latest reason a batch was not accepted
        self._closing = False
        self._closed = False
        self._compress = zstandard.ZstdCompressor(level=3).compress
        # halved on 413: the central node's max_body_bytes may be smaller than our batches
        self._batch_records, self._batch_bytes = BATCH_RECORDS, BATCH_BYTES
        self._sender = threading.Thread(target=self._send_loop, name="http-ship", daemon=True)
        self._sender.start()

    # -- the Producer contract ------------------------------------------------------------------
    def produce(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        self.produce_many(topic, (value,), (key,))

    def produce_many(
        self, topic: str, values: Sequence[bytes], keys: Sequence[bytes | None]
    ) -> None:
        if topic != RAW:
            raise BusError(f"an edge shipping over HTTP carries {RAW} only, not {topic!r}")
        with self._cond:
            if self._closed:
                raise BusError("producer is closed")
            was_empty = not self._queue
            self._queue.extend(zip(keys, values, strict=True))
            self._produced += len(values)
            if was_empty:
                self._cond.notify_all()

    def pending(self) -> int:
        with self._cond:
            return self._produced - self._acked

    def flush(self, timeout: float | None = None) -> None:
        wait = _FLUSH_DEFAULT_S if timeout is None else timeout
        deadline = time.monotonic() + wait
        with self._cond:
            target = self._produced
            while self._acked < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    why = self._error or "no answer yet"
                    raise BusError(
                        f"{target - self._acked} records not yet accepted by "
                        f"{self.target.url} after {wait:g} s: {why}"
                    )
                self._cond.wait(left)

    def close(self) -> None:
        """Stop sending; what was not accepted by then stays unsent (the spool holds it)."""
        with self._cond:
            if self._closed:
                return
            self._closed = self._closing = True
            self._cond.notify_all()
        self._sender.join(self.target.timeout + 5)

    # -- the sender -----------------------------------------------------------------------------
    def _next_batch(self) -> list[tuple[bytes | None, bytes]] | None:
        """The records at the head of the queue (left there until accepted), or None to stop."""
        with self._cond:
            while not self._queue and not self._closing:
                self._cond.wait()
            if self._closing:
                return None
            batch: list[tuple[bytes | None, bytes]] = []
            size = 0
            for item in self._queue:
                batch.append(item)
                size += len(item[1])
                if len(batch) >= self._batch_records or size >= self._batch_bytes:
                    break
            return batch

    def _send_loop(self) -> None:
        conn: http.client.HTTPConnection | None = None
        endpoint = self._endpoint
        pause = 0.1
        headers = {
            "Content-Type": RECORDS_MEDIA,
            "Content-Encoding": "zstd",
            "User-Agent": "logfactory-edge",
        }
        if self.target.token:
            headers["Authorization"] = f"Bearer {self.target.token}"
        while (batch := self._next_batch()) is not None:
            body = self._compress(msgspec.msgpack.encode(batch))
            try:
                if conn is None:
                    conn = endpoint.connect()
                conn.request("POST", endpoint.path, body=body, headers=headers)
                response = conn.getresponse()
                text = response.read()[:2000].decode("utf-8", "replace")
                status, retry_after = response.status, response.getheader("Retry-After")
            except (OSError, http.client.HTTPException) as exc:
                if conn is not None:
                    conn.close()
                conn = None
                self._failed(f"{type(exc).__name__}: {exc}")
                self._sleep(pause)
                pause = min(pause * 2, _MAX_PAUSE_S)
                continue
            if status == 200:
                with self._cond:
                    for _ in batch:
                        self._queue.popleft()
                    self._acked += len(batch)
                    self._error = None
                    self._cond.notify_all()
                pause = 0.1
                continue
            self._failed(f"the central node answered {status}: {text.strip()}")
            if status == 413 and len(batch) > 1:
                self._batch_records = max(1, len(batch) // 2)
                self._batch_bytes = max(1, self._batch_bytes // 2)
                continue
            if status in (429, 503) and retry_after and retry_after.isdigit():
                self._sleep(min(float(retry_after), _MAX_PAUSE_S))
            else:
                self._sleep(pause)
                pause = min(pause * 2, _MAX_PAUSE_S)
        if conn is not None:
            conn.close()

    def _failed(self, reason: str) -> None:
        with self._cond:
            self._error = reason

    def _sleep(self, seconds: float) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._closing, seconds)


class HttpShipBus:
    """The :class:`~logfactory.bus.base.Bus` of ``bus.type: http``: producing only. Its
    watermarks are empty, so a file source finds nothing to read back after a crash (at least
    once, see :mod:`logfactory.collect.sources.file_reconcile`)."""

    def __init__(self, target: ShipTarget) -> None:
        self.target = target

    def _central(self, what: str) -> BusError:
        return BusError(
            f"{what} needs the bus itself; with bus type http this node only ships records to "
            f"{self.target.url}: run it where the central node's bus is"
        )

    def ensure_topic(self, spec: TopicSpec) -> int:
        return spec.partitions  # the central node creates its topics

    def topics(self) -> dict[str, int]:
        return {}

    def producer(self, *, patient: bool = False) -> Producer:
        return HttpShipProducer(self.target)

    def consumer(
        self, group: str | None, topics: Sequence[str], start: StartFrom = "earliest"
    ) -> Consumer:
        raise self._central("a consumer")

    def transaction(self, consumer: Consumer) -> Transaction:
        raise self._central("a transaction")

    def watermarks(self, topic: str) -> dict[int, tuple[int, int]]:
        return {}

    def committed(self, group: str, topic: str) -> dict[int, int]:
        return {}

    def groups(self) -> list[str]:
        return []

    def maintain(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        return None
