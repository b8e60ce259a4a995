"""The OpenSearch writer: bulk requests with ``_id`` = the document's id, retries, retention.

* Idempotency: every document is indexed (``op_type`` index) under its own id in the daily
  index of its arrival, so a replay overwrites what it wrote before and never duplicates. The
  bulk answer tells ``created`` from ``updated``: :meth:`add` returns how many were new.
* :meth:`add` sends at once, ``bulk_docs`` per request; :meth:`commit` refreshes the indices
  written since the last commit, so once it returns everything is searchable. (A bulk that
  OpenSearch acknowledged is durable: its translog is synced per request, the default.)
* Retries: a request that fails whole (no connection, 429, 5xx) and the items that fail
  alone with 429/5xx are sent again, up to ``bulk_retries`` times with doubling waits. An item
  refused for its mapping (400: a decoded field's shape clashes with the index, or the field
  limit is reached) is sent once more without its indexed decoded fields (see
  :mod:`.mapping`), so the record is kept. Whatever still fails raises
  :class:`StoreUnavailable` naming the cluster and the cause: nothing is dropped silently,
  and the role retries the batch.
* Retention is the writer's job (:meth:`apply_retention`): the Index State Management plugin
  is not part of the node the project runs, and deleting whole daily indices is all it would
  do here. Age: a day's indices go once the whole day is older than ``max_age``. Size: then
  the oldest days go while the store's indices together are bigger than ``max_size``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
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

__all__ = ["OpenSearchWriter"]

log = logging.getLogger(__name__)
_encode = msgspec.json.Encoder().encode

FIRST_WAIT_S: Final = 0.25
LONGEST_WAIT_S: Final = 8.0
_MAPPING_ERRORS: Final = frozenset(
    {"mapper_parsing_exception", "illegal_argument_exception", "document_parsing_exception"}
)


class _Item:
    """One document on its way: its index, whether its decoded fields are indexed."""

    __slots__ = ("doc", "index", "indexed_fields")

    def __init__(self, doc: StoredDoc, index: str) -> None:
        self.doc = doc
        self.index = index
        self.indexed_fields = True


class OpenSearchWriter:
    """A :class:`~logfactory.store.engine.StoreWriter` on an OpenSearch cluster."""

    def __init__(self, config: OpenSearchConfig, *, max_age_s: float, max_size: int) -> None:
        self._config = config
        self._max_age_ns = int(max_age_s * 1_000_000_000)
        self._max_size = max_size
        self._client: OpenSearch = make_client(config)
        self._dirty: set[str] = set()
        self._template_ready = False

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
        latest = {doc.id: doc for _, doc in docs}
        items = [_Item(doc, daily_index(prefix, doc)) for doc in latest.values()]
        created = 0
        step = self._config.bulk_docs
        for start in range(0, len(items), step):
            created += self._send(items[start : start + step])
        return created

    def _send(self, items: list[_Item]) -> int:
        """Bulk-index ``items`` until every one is stored; the number newly created."""
        created = 0
        pending = items
        wait = FIRST_WAIT_S
        last_cause = ""
        for attempt in range(self._config.bulk_retries + 1):
            if attempt:
                log.warning(
                    "store: bulk write to %s failed (%s); retry %d of %d in %.2f s",
                    ", ".join(self._config.hosts), last_cause, attempt,
                    self._config.bulk_retries, wait,
                )  # fmt: skip
                time.sleep(wait)  # backoff between retries, not synchronisation
                wait = min(wait * 2, LONGEST_WAIT_S)
            try:
                answer = self._client.bulk(body=self._bulk_lines(pending))
            except OpenSearchException as exc:
                if not is_retryable(exc):
                    raise unavailable(self._config, "a bulk write", exc) from exc
                last_cause = describe(exc)
                continue
            self._dirty.update(item.index for item in pending)
            done, pending, unindexed, last_cause = self._sort_answer(pending, answer)
            created += done
            if unindexed:  # at once, with retries of their own: no fault of the cluster's
                created += self._send(unindexed)
            if not pending:
                return created
        hosts = ", ".join(self._config.hosts)
        raise StoreUnavailable(
            f"OpenSearch at {hosts}: {len(pending)} documents not stored after "
            f"{self._config.bulk_retries} retries: {last_cause}"
        )

    @staticmethod
    def _bulk_lines(items: list[_Item]) -> bytes:
        """The bulk body, encoded here (msgspec is many times faster than the client's json)."""
        lines: list[bytes] = []
        for item in items:
            lines.append(_encode({"index": {"_index": item.index, "_id": item.doc.id}}))
            lines.append(_encode(doc_body(item.doc, indexed_fields=item.indexed_fields)))
        lines.append(b"")
        return b"\n".join(lines)

    def _sort_answer(
        self, items: list[_Item], answer: dict[str, Any]
    ) -> tuple[int, list[_Item], list[_Item], str]:
        """From one bulk answer: how many were created, the items to retry (429, 5xx), those
        to send again without their indexed decoded fields, and the last failure's cause."""
        created = 0
        again: list[_Item] = []
        unindexed: list[_Item] = []
        cause = ""
        for item, result in zip(items, answer["items"], strict=True):
            outcome = result["index"]
            status = int(outcome.get("status", 500))
            if status < 300:
                created += outcome.get("result") == "created"
                continue
            error = outcome.get("error") or {}
            kind = error.get("type", "") if isinstance(error, dict) else ""
            cause = (
                f"{status} {kind}: {error.get('reason', '') if isinstance(error, dict) else error}"
            )
            if status == 400 and kind in _MAPPING_ERRORS and item.indexed_fields:
                log.warning(
                    "store: %s refused %s's decoded fields (%s); kept without indexing them",
                    item.index, item.doc.id, cause,
                )  # fmt: skip
                item.indexed_fields = False
                unindexed.append(item)
            elif status == 429 or status >= 500:
                again.append(item)
            else:
                hosts = ", ".join(self._config.hosts)
                raise StoreUnavailable(f"OpenSearch at {hosts} refused {item.doc.id}: {cause}")
        return created, again, unindexed, cause

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
            self._client.close()
