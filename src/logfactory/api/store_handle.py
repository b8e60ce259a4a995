"""The API process's one store reader: opened at the first query, shared by every request.

A reader is cheap to share and costly to open (the embedded engine maps its index files, the
OpenSearch client opens a connection pool), so one per API process is kept, opened lazily under
a lock: a node whose store is not there yet starts anyway, and its search routes answer 503
until the store can be opened. An opening that fails is not remembered, so the next query tries
again. :meth:`StoreHandle.close` releases it when the app stops (``ApiState.close``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from logfactory.config import Config
from logfactory.errors import StoreUnavailable
from logfactory.store.engine import StoreReader
from logfactory.store.open import open_reader

__all__ = ["StoreHandle", "default_opener"]


def default_opener(config: Config) -> StoreReader:
    """The configured engine's reader (OpenSearch's client is imported only when chosen)."""
    return open_reader(config)


class StoreHandle:
    """The reader of ``config``'s store, opened once by ``opener``; thread-safe."""

    def __init__(
        self, config: Config, opener: Callable[[Config], StoreReader] = default_opener
    ) -> None:
        self._config = config
        self._opener = opener
        self._lock = threading.Lock()
        self._reader: StoreReader | None = None
        self._closed = False

    def reader(self) -> StoreReader:
        """The shared reader; raises :class:`StoreUnavailable` when it cannot be opened."""
        reader = self._reader
        if reader is not None:
            return reader
        with self._lock:
            if self._closed:
                raise StoreUnavailable("the API is stopping; the store is closed")
            if self._reader is None:
                try:
                    self._reader = self._opener(self._config)
                except OSError as exc:
                    raise StoreUnavailable(f"the store cannot be opened: {exc}") from exc
            return self._reader

    def close(self) -> None:
        with self._lock:
            self._closed = True
            reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()
