"""A cheap view of the embedded bus's write heads, for readers that wait for changes.

Why: an idle SSE stream should cost nothing; one watcher per node asks SQLite whether anything
was committed (``PRAGMA data_version``, no I/O) and, only when something was, which topics'
heads moved (:class:`~logfactory.bus.base.HeadWatch`).
"""

from __future__ import annotations

from pathlib import Path

from logfactory.bus.local.db import Db, topic_heads

__all__ = ["LocalHeads"]


class LocalHeads:
    """A lean connection of its own (opened, never created: a missing bus raises
    :class:`~logfactory.errors.MissingBusError`); use it from one thread."""

    def __init__(self, path: Path, fsync: bool) -> None:
        self._db = Db(path, fsync, create=False)
        try:
            self._db.lean()
        except BaseException:
            self._db.close()
            raise

    def data_version(self) -> int:
        return self._db.data_version()

    def heads(self) -> dict[str, int]:
        return topic_heads(self._db)

    def close(self) -> None:
        self._db.close()
