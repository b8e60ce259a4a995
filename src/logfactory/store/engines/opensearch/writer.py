"""The OpenSearch writer: bulk requests with ``_id`` = the document's id, retries, retention.

* Idempotency: every document is indexed (``op_type`` index) under its own id in the daily
  index of its arrival, so a replay overwrites what it wrote before and never duplicates. The
  bulk answer tells ``created`` from ``updated``: :meth:`add` returns how many were new.
* :meth:`add` sends at once: requests of at most ``bulk_docs`` documents and ``bulk_bytes``
  bytes, at least ``bulk_in_flight`` of them a batch and that many at the same time (each is
  served by one write thread of the node: one request at a time leaves a core idle), each
  document encoded once; it returns when every request has been answered. :meth:`commit`
  refreshes the indices written since the last commit, so once it returns everything is
  searchable. A bulk that OpenSearch acknowledged is durable: the template keeps
  ``translog.durability: request`` (synced before the answer), which the role relies on.
* ``_id``: the document's id, or a digest of an id over 512 bytes (:func:`bulk_id`), which
  OpenSearch would refuse with the whole request; the ``id`` field keeps the id itself.
* Retries: a request that fails whole (no connection, 429, 5xx) and the items that fail
  alone with 429/5xx are sent again, up to ``bulk_retries`` times with doubling waits; those
  still failing raise :class:`StoreUnavailable` naming the cluster and the cause, and the role
  retries the batch. An item refused otherwise (4xx: a decoded field's shape clashes with the
  index, the field limit is reached) is sent once more without its indexed decoded fields
  (see :mod:`.mapping`), so the record is kept; refused again, it is refused for good and
  reported by :meth:`take_refused` (the role dead-letters it with the reason) rather than
  holding its batch back forever. Nothing is dropped silently.
* Retention is the writer's job (:meth:`apply_retention`): the Index State Management plugin
  is not part of the node the project runs, and deleting whole daily indices is all it would
  do here. Age: a day's indices go once the whole day is older than ``max_age``. Size: then
  the oldest days go while the store's indices together are bigger than ``max_size``.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Final

import msgspec
from opensearchpy import OpenSearch
from opensearchpy.exceptions import OpenSearchException

from logfactory.config.store import OpenSearchConfig
from logfactory.errors import StoreUnavailable
from logfactory.store.document import StoredDoc
from logfactory.store.engine import Position, RetentionReport, StoreStats
from logfactory.store.engines.opensearch.client import (
    describe,
    is_retryable,
    make_client,
    unavailable,
)
from logfactory.store.engines.opensearch.indices import list_daily_indices, store_stats
from logfactory.store.engines.opensearch.mapping import (
    DAY_NS,
    daily_index,
    doc_body,
    template_body,
    template_name,
)

__all__ = ["OpenSearchWriter", "bulk_id"]

log = logging.getLogger(__name__)
_encode = msgspec.json.Encoder().encode

FIRST_WAIT_S: Final = 0.25
LONGEST_WAIT_S: Final = 8.0
ID_MAX_BYTES: Final = 512
"""OpenSearch refuses a longer ``_id`` (the whole bulk request, not only that document)."""


def bulk_id(doc_id: str) -> str:
    """The ``_id`` a document is written under: its id, or for an id over 512 UTF-8 bytes a
    digest of it (the same every time, so a replay still overwrites). Reads never use
    ``_id``: the ``id`` field keeps the id itself."""
    raw = doc_id.encode()
    if len(raw) <= ID_MAX_BYTES:
        return doc_id
    return "sha256:" + hashlib.sha256(raw).hexdigest()


class _Item:
    """One document on its way: its position, its index, whether its decoded fields are
    indexed, and its two bulk lines (encoded once, again only when that changes)."""

    __slots__ = ("doc", "index", "indexed_fields", "lines", "position")

    def __init__(self, position: Position, doc: StoredDoc, index: str) -> None:
        self.position = position
        self.doc = doc
        self.index = index
        self.indexed_fields = True
        self.lines = self._encode()

    def _encode(self) -> bytes:
        action = _encode({"index": {"_index": self.index, "_id": bulk_id(self.doc.id)}})
        body = _encode(doc_body(self.doc, indexed_fields=self.indexed_fields))
        return b"".join((action, b"\n", body, b"\n"))

    def without_indexed_fields(self) -> None:
        self.indexed_fields = False
        self.lines = self._encode()


class _Sent:
    """What one bulk request's documents came to."""

    __slots__ = ("created", "indices", "refused")

    def __init__(self) -> None:
        self.created = 0
        self.indices: set[str] = set()
        self.refused: list[tuple[Position, str]] = []


class OpenSearchWriter:
    """A :class:`~logfactory.store.engine.StoreWriter` on an OpenSearch cluster."""

    def __init__(self, config: OpenSearchConfig, *, max_age_s: float, max_size: int) -> None:
        self._config = config
        self._max_age_ns = int(max_age_s * 1_000_000_000)
        self._max_size = max_size
        self._client: OpenSearch = make_client(config)
        self._dirty: set[str] = set()
        self._refused: list[tuple[Position, str]] = []
        self._template_ready = False
        self._pool: ThreadPoolExecutor | None = None

    # -- writing ----------------------------------------------------------------------------

    def _ensure_template(self) -> None:
        if self._template_ready:
            return
        cfg = self._config
        body = template_body(cfg.index_prefix, cfg.shards, cfg.replicas)
        try:
            self._client.indices.put_index_template(name=template_name(cfg.index_prefix), body=body)
        except OpenSearchException as exc:
            raise unavailable(cfg, "installing the index template", exc) from exc
        self._template_ready = True

    def add(self, docs: Sequence[tuple[Position, StoredDoc]]) -> int:
        self._ensure_template()
        prefix = self._config.index_prefix
        # The last copy of an id wins within a batch, as it would across batches.
        latest = {doc.id: (position, doc) for position, doc in docs}
        items = (
            _Item(position, doc, daily_index(prefix, doc)) for position, doc in latest.values()
        )
        parallel = self._config.bulk_in_flight
        # At least `parallel` requests, so that one batch keeps every write thread busy.
        per_request = max(1, min(self._config.bulk_docs, -(-len(latest) // parallel)))
        chunks = self._chunks(items, per_request)
        if parallel == 1:
            results = [self._send(chunk) for chunk in chunks]
        else:
            results = self._send_parallel(chunks)
        created = 0
        for sent in results:
            created += sent.created
            self._dirty |= sent.indices
            self._refused += sent.refused
        return created

    def _chunks(self, items: Iterator[_Item], per_request: int) -> Iterator[list[_Item]]:
        """Requests of at most ``per_request`` documents and ``bulk_bytes`` bytes, encoded as
        they are needed (so encoding the next overlaps sending the last)."""
        limit = self._config.bulk_bytes
        chunk: list[_Item] = []
        size = 0
        for item in items:
            if chunk and (len(chunk) >= per_request or size + len(item.lines) > limit):
                yield chunk
                chunk, size = [], 0
            chunk.append(item)
            size += len(item.lines)
        if chunk:
            yield chunk

    def _send_parallel(self, chunks: Iterator[list[_Item]]) -> list[_Sent]:
        """Up to ``bulk_in_flight`` requests at once; every one is waited for (so the batch is
        whole when this returns), then the first failure is raised."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                self._config.bulk_in_flight, thread_name_prefix="store-bulk"
            )
        pending: set[Future[_Sent]] = set()
        done: list[Future[_Sent]] = []
        for chunk in chunks:
            if len(pending) >= self._config.bulk_in_flight:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                done += finished
            pending.add(self._pool.submit(self._send, chunk))
        done += wait(pending).done
        failures = [f.exception() for f in done if f.exception() is not None]
        if failures:
            raise failures[0]  # type: ignore[misc]
        return [f.result() for f in done]

    def _send(self, items: list[_Item]) -> _Sent:
        """Bulk-index ``items`` until every one is stored or refused for good."""
        sent = _Sent()
        pending = items
        wait_s = FIRST_WAIT_S
        last_cause = ""
        for attempt in range(self._config.bulk_retries + 1):
            if attempt:
                log.warning(
                    "store: bulk write to %s failed (%s); retry %d of %d in %.2f s",
                    ", ".join(self._config.hosts), last_cause, attempt,
                    self._config.bulk_retries, wait_s,
                )  # fmt: skip
                time.sleep(wait_s)  # backoff between retries, not synchronisation
                wait_s = min(wait_s * 2, LONGEST_WAIT_S)
            try:
                answer = self._client.bulk(body=b"".join(item.lines for item in pending))
            except OpenSearchException as exc:
                if not is_retryable(exc):
                    raise unavailable(self._config, "a bulk write", exc) from exc
                last_cause = describe(exc)
                continue
            sent.indices.update(item.index for item in pending)
            pending, unindexed, last_cause = self._sort_answer(pending, answer, sent)
            if unindexed:  # at once, with retries of their own: no fault of the cluster's
                again = self._send(unindexed)
                sent.created += again.created
                sent.refused += again.refused
            if not pending:
                return sent
        hosts = ", ".join(self._config.hosts)
        raise StoreUnavailable(
            f"OpenSearch at {hosts}: {len(pending)} documents not stored after "
            f"{self._config.bulk_retries} retries: {last_cause}"
        )

    def _sort_answer(
        self, items: list[_Item], answer: dict[str, Any], sent: _Sent
    ) -> tuple[list[_Item], list[_Item], str]:
        """From one bulk answer: count the created in ``sent`` and note there the documents
        refused for good; return the items to retry (429, 5xx), those to send again without
        their indexed decoded fields, and the last failure's cause.

        A document refused (any other 4xx) is sent once more without its indexed decoded
        fields (a mapping clash is the usual cause); refused again, it is refused for good
        and the role sends its message to the dead letters with the reason."""
        again: list[_Item] = []
        unindexed: list[_Item] = []
        cause = ""
        if not answer.get("errors", True):  # the common case: one pass, no per-item checks
            sent.created += sum(r["index"].get("result") == "created" for r in answer["items"])
            return again, unindexed, cause
        for item, result in zip(items, answer["items"], strict=True):
            outcome = result["index"]
            status = int(outcome.get("status", 500))
            if status < 300:
                sent.created += outcome.get("result") == "created"
                continue
            error = outcome.get("error") or {}
            kind = error.get("type", "") if isinstance(error, dict) else ""
            reason = error.get("reason", "") if isinstance(error, dict) else str(error)
            cause = f"{status} {kind}: {reason}"
            if status == 429 or status >= 500:
                again.append(item)
            elif item.indexed_fields:
                item.without_indexed_fields()
                unindexed.append(item)
            else:
                sent.refused.append((item.position, f"OpenSearch refused it: {cause}"))
        if unindexed:  # one line a request: a field that clashes in every record would flood
            log.warning(
                "store: %s refused the decoded fields of %d documents, kept without indexing "
                "them; the first, %s: %s", unindexed[0].index, len(unindexed),
                unindexed[0].doc.id, cause,
            )  # fmt: skip
        return again, unindexed, cause

    def take_refused(self) -> list[tuple[Position, str]]:
        """The documents refused for good since the last call, with the reason."""
        refused, self._refused = self._refused, []
        return refused

    def commit(self) -> None:
        if not self._dirty:
            return
        try:
            self._client.indices.refresh(index=",".join(sorted(self._dirty)))
        except OpenSearchException as exc:
            raise unavailable(self._config, "a refresh", exc) from exc
        self._dirty.clear()

    # -- retention and stats ----------------------------------------------------------------

    def apply_retention(self, now_ns: int) -> RetentionReport:
        try:
            indices = list_daily_indices(self._client, self._config.index_prefix)
        except OpenSearchException as exc:
            raise unavailable(self._config, "listing indices for retention", exc) from exc
        cutoff = now_ns - self._max_age_ns
        doomed = [index for index in indices if index.day + DAY_NS <= cutoff]
        kept = [index for index in indices if index.day + DAY_NS > cutoff]
        if self._max_size > 0:
            size = sum(index.bytes for index in kept)
            days = sorted({index.day for index in kept})
            # The newest day is never dropped for size: it is where writes go.
            for day in days[:-1]:
                if size <= self._max_size:
                    break
                for index in (i for i in kept if i.day == day):
                    doomed.append(index)
                    size -= index.bytes
        if not doomed:
            return RetentionReport()
        names = [index.name for index in doomed]
        try:
            self._client.indices.delete(
                index=",".join(names), params={"ignore_unavailable": "true"}
            )
        except OpenSearchException as exc:
            raise unavailable(self._config, "deleting old indices", exc) from exc
        log.info("store: retention dropped %s", ", ".join(names))
        return RetentionReport(
            dropped_partitions=tuple(names),
            dropped_docs=sum(index.docs for index in doomed),
            bytes_freed=sum(index.bytes for index in doomed),
        )

    def stats(self) -> StoreStats:
        try:
            return store_stats(self._client, self._config.index_prefix)
        except OpenSearchException as exc:
            raise unavailable(self._config, "reading statistics", exc) from exc

    def close(self) -> None:
        try:
            self.commit()
        finally:
            if self._pool is not None:
                self._pool.shutdown()
            self._client.close()
