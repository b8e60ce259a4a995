"""``store``: the log store role and its engine (embedded tantivy, or OpenSearch).

The store keeps every parsed log (``logs.parsed``) and every event (``events.*``) searchable.
The embedded engine needs nothing but the data directory; OpenSearch is for a site whose
logs outgrow one machine. Both are configured here; the engine is chosen by ``engine``.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from logfactory.config.base import Problems, Section
from logfactory.config.units import Duration, Size

__all__ = ["OpenSearchConfig", "StoreConfig", "StoreRetention"]


class StoreRetention(Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``store.retention``: how long and how much the store keeps (whichever limit comes first).

    Attributes:
        max_age: a day's partition is dropped once all of it is older than this (by arrival)
        max_size: the oldest partitions are dropped while the store is bigger than this
            (0: no size limit)
    """

    max_age: Duration = Duration("30d")
    max_size: Size = Size(0)

    def problems(self) -> Problems:
        if self.max_age < 86_400:
            yield (("max_age",), "must be at least 1d: the store drops whole days")
        if self.max_size < 0:
            yield (("max_size",), "must be 0 (no limit) or more")


class OpenSearchConfig(Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``store.opensearch``: the cluster, its indices and how the store writes to it.

    Attributes:
        hosts: the nodes' HTTP addresses (``http://127.0.0.1:9200``)
        index_prefix: indices are PREFIX-logs-YYYY.MM.DD and PREFIX-events-YYYY.MM.DD
        shards: primary shards of each daily index
        replicas: replicas of each shard (0 on one node)
        username: basic-auth user, when the cluster has security enabled
        password: basic-auth password (never logged)
        ca_file: the CA that signed the cluster's HTTPS certificates
        verify_certs: check the cluster's certificates over HTTPS
        bulk_docs: documents in one bulk request (at most)
        bulk_bytes: bytes of one bulk request's body (at most; a single larger document goes alone)
        bulk_in_flight: bulk requests sent at the same time (each is one write thread on the node)
        bulk_retries: retries of a bulk request that failed as a whole or in part
        request_timeout: how long one request may take
    """

    hosts: list[str] = msgspec.field(default_factory=lambda: ["http://127.0.0.1:9200"])
    index_prefix: str = "logfactory"
    shards: int = 1
    replicas: int = 0
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    verify_certs: bool = True
    bulk_docs: int = 5000
    bulk_bytes: Size = Size("8MiB")
    bulk_in_flight: int = 2
    bulk_retries: int = 5
    request_timeout: Duration = Duration("30s")

    def problems(self) -> Problems:
        if not self.hosts:
            yield (("hosts",), "give at least one node: hosts: [http://127.0.0.1:9200]")
        for i, host in enumerate(self.hosts):
            if not host.startswith(("http://", "https://")):
                yield (("hosts", i), f"{host!r} is not an address; write http://HOST:PORT")
        if not self.index_prefix or not self.index_prefix.replace("-", "").isalnum():
            yield (("index_prefix",), "use lower-case letters, digits and '-' only")
        elif self.index_prefix != self.index_prefix.lower():
            yield (("index_prefix",), "OpenSearch index names are lower case")
        if self.shards < 1:
            yield (("shards",), "must be at least 1")
        if self.replicas < 0:
            yield (("replicas",), "must be 0 or more")
        if self.bulk_docs < 1:
            yield (("bulk_docs",), "must be at least 1")
        if self.bulk_bytes < 1:
            yield (("bulk_bytes",), "must be at least 1 byte")
        if self.bulk_in_flight < 1:
            yield (("bulk_in_flight",), "must be at least 1")
        if self.bulk_retries < 0:
            yield (("bulk_retries",), "must be 0 or more")
        if (self.username is None) != (self.password is None):
            yield (("username",), "give both username and password, or neither")


class StoreConfig(Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``store``: the log store role (part of ``logfactory run`` unless disabled).

    Attributes:
        enabled: run the store role inside ``logfactory run``
        engine: embedded (tantivy, in the data directory) or opensearch
        path: the embedded engine's folder (default: DATA_DIR/store)
        group: the store's consumer group on the bus
        batch_size: records taken from the bus at once
        commit_interval: the longest a stored record waits before it is searchable
        commit_docs: records written before the engine commits, even within the interval
        query_timeout: the longest one query may run; it then answers with what it has
        max_results: the most hits one page of results may ask for
        export_max: the most records one export streams
        export_timeout: the longest one export may stream; it then ends, saying so
        retention: how long and how much the store keeps
        opensearch: the OpenSearch cluster (engine: opensearch)
    """

    enabled: bool = True
    engine: Literal["embedded", "opensearch"] = "embedded"
    path: str | None = None
    group: str = "store"
    batch_size: int = 5000
    commit_interval: Duration = Duration("1s")
    commit_docs: int = 50_000
    query_timeout: Duration = Duration("10s")
    max_results: int = 1000
    export_max: int = 10_000_000
    export_timeout: Duration = Duration("10m")
    retention: StoreRetention = StoreRetention()
    opensearch: OpenSearchConfig = msgspec.field(default_factory=OpenSearchConfig)

    def problems(self) -> Problems:
        if self.batch_size < 1:
            yield (("batch_size",), "must be at least 1")
        if self.commit_docs < 1:
            yield (("commit_docs",), "must be at least 1")
        if self.commit_interval <= 0:
            yield (("commit_interval",), "must be more than 0")
        if self.query_timeout <= 0:
            yield (("query_timeout",), "must be more than 0")
        if not 1 <= self.max_results <= 100_000:
            yield (("max_results",), "must be between 1 and 100000")
        if self.export_max < 1:
            yield (("export_max",), "must be at least 1")
        if self.export_timeout <= 0:
            yield (("export_timeout",), "must be more than 0")
        if not self.group:
            yield (("group",), "give the store's consumer group a name")
        for key, what in self.retention.problems():
            yield (("retention", *key), what)
        if self.engine == "opensearch":
            for key, what in self.opensearch.problems():
                yield (("opensearch", *key), what)
