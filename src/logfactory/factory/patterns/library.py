"""The pattern library: every template per workshop, with the status people gave it.

Contracts the rest of the factory relies on:

- **Ids come from content**: ``"p-" + blake2b(workshop NUL template, 10 bytes)``. Two workers, or
  one worker after a restart, that arrive at the same template give it the same id.
- **Announced once**: ``observe`` returns ``is_new=True`` exactly once per template id (the record
  that created it). When a template generalises (``... for root ...`` and ``... for alice ...``
  become ``... for <*> ...``), the general template gets a new id and records the old ones in its
  ``lineage``; it is *not* announced again, because it only widens a template people were already
  told about, and it keeps the old entry's status, reason and severity. The superseded entry is
  kept as a change with ``superseded_by`` so the compacted topic redirects its id as well.
- **Changes, not traffic**: ``drain_changes`` returns entries that were created, generalised or
  reviewed since the last call; counts and ``last_seen`` move on every record but are only written
  when asked with ``include_counts=True`` (the lead does that every ~10 s).
- **Restore and share** with ``apply`` (one serialised entry; later applies win for status,
  counts take the maximum). Applying never produces changes, so workers do not echo each other.
  A review applied to an id this process has already generalised carries over to the general
  entry unless that entry has a review of its own.
- **Bounded**: at most ``max_templates_per_workshop`` entries per workshop; beyond that the least
  recently seen unreviewed (``new``) entries are evicted, 10% at a time. Reviewed entries are never
  evicted. An evicted template that comes back is not announced again in this process (up to
  200,000 remembered evictions; a flood beyond that may re-announce).

Counts are per process: with several workers the stored count is the last writer's, which is
good enough for "how common is this" and is documented as such.
Not thread-safe: one worker thread owns a library.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import msgspec

from logfactory.factory.patterns import files
from logfactory.factory.patterns.entry import (
    STATUSES,
    PatternEntry,
    decode_entry,
    encode_entry,
    entry_key,
    pattern_id,
)
from logfactory.factory.patterns.miner_accurate import AccurateMiner, Cluster, Miner

__all__ = [
    "STATUSES",
    "Observation",
    "PatternEntry",
    "PatternLibrary",
    "entry_key",
    "pattern_id",
]

_EXAMPLE_CHARS = 2000
_MAX_RETIRED = 200_000


class Observation(NamedTuple):
    pattern_id: str
    template: str
    status: str
    reason: str | None
    severity: str | None
    is_new: bool


class _Slot:
    """An active entry plus what the hot path needs: its cached observation and clusters."""

    __slots__ = ("clusters", "entry", "flushed_count", "obs")

    def __init__(self, entry: PatternEntry) -> None:
        self.entry = entry
        self.clusters: list[Cluster] = []
        self.flushed_count = entry.count
        self.obs = self.observation(False)

    def observation(self, is_new: bool) -> Observation:
        e = self.entry
        return Observation(e.id, e.template, e.status, e.reason, e.severity, is_new)


class PatternLibrary:
    """See the module docstring. ``miner`` defaults to :class:`AccurateMiner`."""

    def __init__(self, max_templates_per_workshop: int = 5000, miner: Miner | None = None) -> None:
        self.max_templates_per_workshop = max_templates_per_workshop
        self._miner: Miner = miner if miner is not None else AccurateMiner()
        self._slots: dict[str, _Slot] = {}  # active entries by id
        self._by_handle: dict[int, _Slot] = {}
        self._per_workshop: dict[str, int] = {}
        self._alias: dict[str, str] = {}  # superseded id -> id that replaced it
        self._retired: set[str] = set()  # evicted ids: never announced again
        self._changed: dict[str, None] = {}  # ordered set of active ids to write
        self._pending: dict[str, bytes] = {}  # superseded entries to write

    # -- hot path -------------------------------------------------------------------------------
    def observe(self, workshop: str, message: str, time_ns: int) -> Observation:
        cluster, previous = self._miner.add(workshop, message)
        slot = self._by_handle.get(cluster.handle)
        if slot is not None and previous is None:
            entry = slot.entry
            entry.count += 1
            if time_ns > entry.last_seen:
                entry.last_seen = time_ns
            return slot.obs
        if slot is None:
            obs = self._created(workshop, message, time_ns, cluster)
        else:
            obs = self._generalised(slot, cluster, time_ns)
        if previous is not None:
            self._fold_absorbed()
        return obs

    def _fold_absorbed(self) -> None:
        """Entries of clusters the miner merged into a generalised one join its lineage now,
        not when their next message happens to arrive: one template, one entry."""
        for other in self._miner.take_absorbed():
            old = self._by_handle.get(other.handle)
            target = self._by_handle.get(self._miner.current(other).handle)
            if old is None or target is None or old is target:
                continue
            self._supersede(old, target, add_counts=True)
            self._changed[target.entry.id] = None

    # -- creation and generalisation ------------------------------------------------------------
    def _resolve(self, pid: str) -> str:
        seen = 0
        while pid in self._alias and seen < 64:  # bounded: a corrupt cycle must not hang us
            pid = self._alias[pid]
            seen += 1
        return pid

    def _find(self, pid: str) -> _Slot | None:
        slot = self._slots.get(self._resolve(pid))
        return slot if slot is not None else self._slots.get(pid)

    def _bind(self, slot: _Slot, cluster: Cluster) -> None:
        self._by_handle[cluster.handle] = slot
        if cluster not in slot.clusters:
            slot.clusters.append(cluster)

    def _add_slot(self, entry: PatternEntry) -> _Slot:
        slot = _Slot(entry)
        self._slots[entry.id] = slot
        self._per_workshop[entry.workshop] = self._per_workshop.get(entry.workshop, 0) + 1
        return slot

    def _drop_slot(self, slot: _Slot) -> None:
        if self._slots.pop(slot.entry.id, None) is not None:
            self._per_workshop[slot.entry.workshop] -= 1
        self._changed.pop(slot.entry.id, None)

    def _created(self, workshop: str, message: str, time_ns: int, cluster: Cluster) -> Observation:
        pid = pattern_id(workshop, cluster.text)
        slot = self._find(pid)
        if slot is not None:  # known (restored, applied, or a twin cluster): not new
            self._bind(slot, cluster)
            slot.entry.count += 1
            slot.entry.last_seen = max(slot.entry.last_seen, time_ns)
            return slot.obs
        is_new = pid not in self._retired and pid not in self._alias
        if self._per_workshop.get(workshop, 0) >= self.max_templates_per_workshop:
            self._evict(workshop)
        entry = PatternEntry(
            id=pid,
            workshop=workshop,
            template=cluster.text,
            count=1,
            first_seen=time_ns,
            last_seen=time_ns,
            example=message[:_EXAMPLE_CHARS],
        )
        slot = self._add_slot(entry)
        slot.flushed_count = 0
        self._bind(slot, cluster)
        self._changed[pid] = None
        return slot.observation(is_new)

    def _generalised(self, old: _Slot, cluster: Cluster, time_ns: int) -> Observation:
        new_id = pattern_id(cluster.workshop, cluster.text)
        before = old.entry
        if new_id == before.id:  # cannot happen with a real change, but stay consistent
            before.count += 1
            return old.obs
        target = self._slots.get(new_id)
        if target is None:
            entry = PatternEntry(
                id=new_id,
                workshop=before.workshop,
                template=cluster.text,
                first_seen=before.first_seen,
                last_seen=before.last_seen,
                example=before.example,
            )
            target = self._add_slot(entry)
            target.flushed_count = 0
        self._supersede(old, target, add_counts=True)
        target.entry.count += 1
        target.entry.last_seen = max(target.entry.last_seen, time_ns)
        self._changed[new_id] = None
        return target.obs

    def _supersede(self, old: _Slot, target: _Slot, add_counts: bool) -> None:
        """Fold ``old`` into ``target``: lineage, status (if target is unreviewed), clusters,
        counts (added for a local generalisation; the maximum when another process did it and
        its count already includes ours as far as it knows)."""
        before, after = old.entry, target.entry
        if after.status == "new" and before.status != "new":
            after.status, after.reason, after.severity = (
                before.status,
                before.reason,
                before.severity,
            )
        lineage = [*after.lineage]
        for pid in (*before.lineage, before.id):
            if pid not in lineage and pid != after.id:
                lineage.append(pid)
        after.lineage = lineage
        after.count = after.count + before.count if add_counts else max(after.count, before.count)
        after.first_seen = min(after.first_seen or before.first_seen, before.first_seen)
        after.last_seen = max(after.last_seen, before.last_seen)
        for pid in (*before.lineage, before.id):
            self._alias[pid] = after.id
        for cluster in old.clusters:
            self._bind(target, cluster)
        self._drop_slot(old)
        target.obs = target.observation(False)
        before.superseded_by = after.id
        self._pending[before.id] = encode_entry(before)

    def _evict(self, workshop: str) -> None:
        candidates = sorted(
            (s.entry.last_seen, pid)
            for pid, s in self._slots.items()
            if s.entry.workshop == workshop and s.entry.status == "new"
        )
        for _, pid in candidates[: max(1, self.max_templates_per_workshop // 10)]:
            slot = self._slots[pid]
            for cluster in slot.clusters:
                self._by_handle.pop(cluster.handle, None)
                self._miner.forget(cluster)
            self._drop_slot(slot)
            if len(self._retired) >= _MAX_RETIRED:  # a flood of one-off templates: forget
                self._retired.clear()
            self._retired.add(pid)

    # -- reviews and reads ------------------------------------------------------------------------
    def set_status(
        self,
        pattern_id: str,
        status: str,
        reason: str | None = None,
        severity: str | None = None,
    ) -> None:
        """Review a template (by its id or any id in its lineage). Raises KeyError if unknown,
        ValueError for a status other than new, normal, alert."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
        slot = self._find(pattern_id)
        if slot is None:
            raise KeyError(pattern_id)
        entry = slot.entry
        entry.status, entry.reason, entry.severity = status, reason, severity
        slot.obs = slot.observation(False)
        self._changed[entry.id] = None

    def get(self, pattern_id: str) -> PatternEntry | None:
        """A copy of the entry (following lineage), or None."""
        slot = self._find(pattern_id)
        return msgspec.structs.replace(slot.entry) if slot is not None else None

    def ids_with_prefix(self, prefix: str) -> list[str]:
        """The active ids that ``prefix`` may name: those starting with it, and the successors
        of superseded ids starting with it (an old id keeps working, shortened too); sorted."""
        found = {pid for pid in self._slots if pid.startswith(prefix)}
        for old in self._alias:
            if old.startswith(prefix):
                slot = self._find(old)
                if slot is not None:
                    found.add(slot.entry.id)
        return sorted(found)

    def entries(self, workshop: str | None = None) -> list[PatternEntry]:
        """Copies of the active entries, by workshop then id."""
        out = [
            msgspec.structs.replace(s.entry)
            for s in self._slots.values()
            if workshop is None or s.entry.workshop == workshop
        ]
        out.sort(key=lambda e: (e.workshop, e.id))
        return out

    def __len__(self) -> int:
        return len(self._slots)

    # -- sharing --------------------------------------------------------------------------------
    def drain_changes_keyed(self, include_counts: bool = False) -> list[tuple[str, bytes]]:
        """(pattern id, serialised entry) for every change since the last call; superseded
        entries first, so a reader applying in order ends on the general entry."""
        out = list(self._pending.items())
        self._pending.clear()
        ids = list(self._changed)
        self._changed.clear()
        if include_counts:
            listed = set(ids)
            ids.extend(
                pid
                for pid, s in self._slots.items()
                if s.entry.count != s.flushed_count and pid not in listed
            )
        for pid in ids:
            slot = self._slots.get(pid)
            if slot is not None:
                slot.flushed_count = slot.entry.count
                out.append((pid, encode_entry(slot.entry)))
        return out

    def drain_changes(self, include_counts: bool = False) -> list[bytes]:
        return [data for _, data in self.drain_changes_keyed(include_counts)]

    def apply(self, data: bytes, mark_changed: bool = False) -> None:
        """Load one serialised entry (restore, or a review made elsewhere). Raises ValueError if
        ``data`` is not an entry. ``mark_changed`` makes it a change to write (imports)."""
        try:
            entry = decode_entry(data)
        except msgspec.DecodeError as exc:
            raise ValueError(f"not a pattern entry: {exc}") from exc
        if entry.status not in STATUSES:
            raise ValueError(f"pattern entry {entry.id}: unknown status {entry.status!r}")
        if entry.superseded_by is not None:
            self._apply_superseded(entry)
        elif entry.id in self._slots:
            self._update(self._slots[entry.id], entry)
        elif entry.id in self._alias:
            self._apply_to_successor(entry)
        else:
            self._apply_new(entry)
        if mark_changed:
            slot = self._find(entry.id)
            if slot is not None:
                self._changed[slot.entry.id] = None

    def _update(self, slot: _Slot, entry: PatternEntry) -> None:
        mine = slot.entry
        mine.status, mine.reason, mine.severity = entry.status, entry.reason, entry.severity
        mine.example = entry.example or mine.example
        mine.count = max(mine.count, entry.count)
        slot.flushed_count = max(slot.flushed_count, entry.count)
        mine.first_seen = min(mine.first_seen, entry.first_seen) or entry.first_seen
        mine.last_seen = max(mine.last_seen, entry.last_seen)
        for pid in entry.lineage:
            self._absorb(pid, slot)
        slot.obs = slot.observation(False)

    def _absorb(self, old_id: str, slot: _Slot) -> None:
        """``old_id`` is in the lineage of ``slot``: redirect it (and its local clusters)."""
        if old_id == slot.entry.id:
            return
        if old_id not in slot.entry.lineage:
            slot.entry.lineage = [*slot.entry.lineage, old_id]
        self._alias[old_id] = slot.entry.id
        old = self._slots.get(old_id)
        if old is None:
            return
        for cluster in old.clusters:
            self._miner.retemplate(cluster, slot.entry.template)
            self._bind(slot, cluster)
        self._drop_slot(old)

    def _apply_superseded(self, entry: PatternEntry) -> None:
        assert entry.superseded_by is not None
        old = self._slots.get(entry.id)
        target = self._find(entry.superseded_by)
        if old is None:
            self._alias[entry.id] = entry.superseded_by
        elif target is not None:
            self._supersede(old, target, add_counts=False)
            self._pending.pop(entry.id, None)  # another process already wrote it
        # else: keep ours active; the successor's own apply absorbs it through its lineage

    def _apply_to_successor(self, entry: PatternEntry) -> None:
        target = self._find(entry.id)
        if target is None or entry.status == "new" or target.entry.status != "new":
            return
        t = target.entry
        t.status, t.reason, t.severity = entry.status, entry.reason, entry.severity
        target.obs = target.observation(False)

    def _apply_new(self, entry: PatternEntry) -> None:
        entry.lineage = list(entry.lineage)
        slot = self._add_slot(entry)
        for pid in entry.lineage:
            self._absorb(pid, slot)
        if not slot.clusters:
            self._bind(slot, self._miner.seed(entry.workshop, entry.template))

    # -- files (format in :mod:`logfactory.factory.patterns.files`) ----------------------------
    def export_jsonl(self, path: str | Path) -> int:
        """Write every active entry, sorted: readable and diffable."""
        return files.export_jsonl(self.entries(), path)

    def import_jsonl(self, path: str | Path) -> int:
        """Apply every entry of an exported file, marking them as changes to write. Raises
        ValueError naming the line for anything that is not such a file."""
        return files.import_jsonl(path, self._import_one)

    def _import_one(self, data: bytes) -> None:
        self.apply(data, mark_changed=True)
