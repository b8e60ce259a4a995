"""The embedded bus's topics: one cache of (table id, partitions) per bus handle.

Why an object of its own: the bus, its producers, its consumers and the append path all
resolve topic names, and resolving must go through one cache (a topic's table id and
partition count never change once created) without any of them knowing the bus class.
"""

from __future__ import annotations

from logfactory.bus.base import BusError, TopicSpec
from logfactory.bus.local.db import MAX_PARTITIONS, TOPIC_TABLE, Db

__all__ = ["TopicTable"]


class TopicTable:
    """Topics of the bus in ``db``; unknown names are created with ``default_partitions``
    by :meth:`info`, never by :meth:`find`."""

    def __init__(self, db: Db, default_partitions: int) -> None:
        self._db = db
        self.default_partitions = default_partitions
        self.cache: dict[str, tuple[int, int]] = {}
        self.compacted: set[str] = set()  # topics whose rows stay one message each

    def ensure(self, spec: TopicSpec) -> int:
        """Create the topic if missing; its partition count (the stored one if it exists)."""
        info = self.find(spec.name)
        if info is not None:
            return info[1]
        if not spec.name or not 1 <= spec.partitions <= MAX_PARTITIONS:
            raise BusError(f"topic {spec.name!r}: needs a name and 1..{MAX_PARTITIONS} partitions")
        with self._db.write() as c:
            row = c.execute("SELECT partitions FROM topics WHERE name=?", (spec.name,)).fetchone()
            if row is not None:
                return int(row[0])
            (next_id,) = c.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM topics").fetchone()
            c.execute(
                "INSERT INTO topics VALUES (?,?,?,?,?,?)",
                (
                    spec.name,
                    next_id,
                    spec.partitions,
                    int(spec.compact),
                    spec.retention_ms,
                    spec.retention_bytes,
                ),
            )
            c.execute(TOPIC_TABLE.format(tid=next_id))
            if spec.compact:
                c.execute(f"CREATE INDEX t{next_id}_key ON t{next_id}(key, rid)")
            c.executemany(
                "INSERT INTO heads (topic, partition, next) VALUES (?,?,0)",
                [(spec.name, p) for p in range(spec.partitions)],
            )
        return spec.partitions

    def find(self, name: str) -> tuple[int, int] | None:
        """(table id, partitions) of an existing topic, else None."""
        cached = self.cache.get(name)
        if cached is not None:
            return cached
        rows = self._db.query("SELECT id, partitions, compact FROM topics WHERE name=?", (name,))
        if not rows:
            return None
        row = rows[0]
        info = (int(row[0]), int(row[1]))
        if row[2]:
            self.compacted.add(name)
        self.cache[name] = info
        return info

    def info(self, name: str) -> tuple[int, int]:
        """(table id, partitions); creates the topic with the defaults if it does not exist."""
        info = self.cache.get(name) or self.find(name)
        if info is None:
            self.ensure(TopicSpec(name, self.default_partitions))
            info = self.find(name)
        if info is None:  # pragma: no cover - ensure() just created it
            raise BusError(f"topic {name!r} could not be created")
        return info
