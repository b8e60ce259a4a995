"""The search routes' test world: a real embedded store filled with ``sample_docs``, and the
node's API over it (starlette's TestClient), plus the oracle's answers in the API's order.

The store is written once per test module (writing is the slow part); each test opens its own
client on it, with the store settings it needs (a small ``export_max``, ``max_results``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers.clients import TestClient, make_client
from tests.helpers.store_data import positions, sample_docs
from tests.helpers.store_feed import store_config
from tests.helpers.store_oracle import expected_ids

from logfactory.access import Role
from logfactory.api import NodeContext
from logfactory.bus.local import LocalBus
from logfactory.config import Config
from logfactory.store.document import StoredDoc
from logfactory.store.engines.embedded import EmbeddedWriter
from logfactory.store.open import store_path
from logfactory.store.query.parser import parse_query

__all__ = ["HOUR_NS", "SearchWorld", "build_world", "newest_first", "oracle_ids"]

HOUR_NS = 3600 * 10**9


@dataclass
class SearchWorld:
    """A filled store under ``root`` and the documents it holds."""

    root: Path
    docs: list[StoredDoc]
    now_ns: int

    def config(self, **store: Any) -> Config:
        """A configuration whose store is this one, with ``store`` settings."""
        return store_config(self.root, **store)

    @contextmanager
    def client(
        self, tmp: Path, role: Role | None = Role.VIEWER, **store: Any
    ) -> Iterator[tuple[TestClient, NodeContext]]:
        """The API over this store (lifespan run: its reader is closed at the end)."""
        bus = LocalBus(tmp / "bus")
        client, ctx = make_client(tmp, bus, self.config(**store), role=role)
        try:
            with client:
                yield client, ctx
        finally:
            ctx.producer.close()
            ctx.access.close()
            bus.close()


def build_world(root: Path, n: int = 600, seed: int = 7) -> SearchWorld:
    """A store of ``n`` sample documents spread over the day that ended six hours ago."""
    root.mkdir(parents=True, exist_ok=True)
    now = time.time_ns()
    docs = sample_docs(n, seed=seed, start_ns=now - 30 * HOUR_NS, days=1)
    world = SearchWorld(root, docs, now)
    config = world.config()
    retention = config.store.retention
    writer = EmbeddedWriter(
        store_path(config), max_age_s=float(retention.max_age), max_size=int(retention.max_size)
    )
    try:
        writer.add(positions(docs))
        writer.commit()
    finally:
        writer.close()
    return world


def newest_first(docs: list[StoredDoc]) -> list[StoredDoc]:
    """The API's order: time descending, ties by id descending."""
    return sorted(docs, key=lambda d: (d.time, d.id), reverse=True)


def oracle_ids(
    world: SearchWorld, q: str, since: str | None = None, until: str | None = None
) -> list[str]:
    """The ids ``q`` must find, newest first, by the brute-force oracle."""
    return expected_ids(parse_query(q, now_ns=time.time_ns(), since=since, until=until), world.docs)
