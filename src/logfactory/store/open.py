"""Open the configured store engine: one place that reads ``config.store.engine``.

The embedded engine (tantivy) lives in ``store.path`` or ``DATA_DIR/store``; OpenSearch is
imported only when chosen, so a node that never uses it never loads its client.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from logfactory.config import Config
from logfactory.store.engine import StoreReader, StoreWriter

__all__ = ["describe_store", "open_reader", "open_writer", "store_path"]


def _opensearch() -> ModuleType:
    """The OpenSearch engine, loaded on first use: its client (opensearch-py, urllib3) costs a
    node that never uses it nothing."""
    return importlib.import_module("logfactory.store.engines.opensearch")


def store_path(config: Config) -> Path:
    """The embedded engine's folder: ``store.path`` (relative to the working directory, like
    ``node.data_dir``) or ``DATA_DIR/store``."""
    path = config.store.path
    return Path(path).expanduser() if path else config.data_dir / "store"


def open_writer(config: Config) -> StoreWriter:
    """The store role's writer. Raises :class:`~logfactory.errors.StoreUnavailable` when the
    engine cannot be opened for writing (locked by another store, unreachable)."""
    store = config.store
    max_age_s, max_size = float(store.retention.max_age), int(store.retention.max_size)
    if store.engine == "opensearch":
        writer: StoreWriter = _opensearch().OpenSearchWriter(
            store.opensearch, max_age_s=max_age_s, max_size=max_size
        )
        return writer
    from logfactory.store.engines.embedded import EmbeddedWriter

    return EmbeddedWriter(store_path(config), max_age_s=max_age_s, max_size=max_size)


def open_reader(config: Config) -> StoreReader:
    """A reader for queries (any number, in any process, beside the writer)."""
    store = config.store
    if store.engine == "opensearch":
        reader: StoreReader = _opensearch().OpenSearchReader(store.opensearch)
        return reader
    from logfactory.store.engines.embedded import EmbeddedReader

    return EmbeddedReader(store_path(config))


def describe_store(config: Config) -> str:
    """Where the store keeps its data, for a banner: ``engine embedded, var/data/store``."""
    if config.store.engine == "opensearch":
        hosts = ", ".join(config.store.opensearch.hosts)
        return f"engine opensearch, {hosts}, indices {config.store.opensearch.index_prefix}-*"
    return f"engine embedded, {store_path(config)}"
