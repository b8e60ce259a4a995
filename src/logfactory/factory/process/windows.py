"""Sliding time windows per key, with suppression and bounded memory.

Time is *event time* (``Decoded.time_ns``), never the wall clock, so replaying an old file finds
the same bursts as the live stream did. A window keeps the hits whose time is within ``window_ns``
of the newest hit it has seen; hits are kept sorted by time, so records arriving slightly out of
order (several hosts, one partition) still count correctly, and a hit older than the window's
span is ignored.

Memory is bounded twice: a window never holds more than the rule's threshold (it fires and
empties at that point), and a :class:`KeyedWindows` holds at most ``max_keys`` keys, evicting the
least recently touched. Messages kept as evidence are truncated to ``MAX_MESSAGE_CHARS``.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import OrderedDict
from collections.abc import Iterator
from typing import NamedTuple

__all__ = ["MAX_MESSAGE_CHARS", "Hit", "KeyedWindows", "Window"]

MAX_MESSAGE_CHARS = 1024


class Hit(NamedTuple):
    """One matching record: what the event needs from it later."""

    time_ns: int
    host: str | None
    message: str
    collected: tuple[str | None, ...]


def _time(hit: Hit) -> int:
    return hit.time_ns


class Window:
    """The hits of one key of one rule, and until when that key is suppressed."""

    __slots__ = ("hits", "suppressed_until")

    def __init__(self, hits: list[Hit] | None = None, suppressed_until: int = 0) -> None:
        self.hits: list[Hit] = hits if hits is not None else []
        self.suppressed_until = suppressed_until

    def add(self, hit: Hit, window_ns: int) -> bool:
        """Insert ``hit`` and drop hits that fell out of the window; False if ``hit`` itself is
        too old to count (older than the window's span behind the newest hit)."""
        hits = self.hits
        newest = hits[-1].time_ns if hits else hit.time_ns
        if hit.time_ns < newest - window_ns:
            return False
        if not hits or hit.time_ns >= newest:
            hits.append(hit)
        else:
            insort(hits, hit, key=_time)
        self.prune(hits[-1].time_ns - window_ns)
        return True

    def prune(self, cutoff_ns: int) -> int:
        """Drop hits older than ``cutoff_ns``; return how many."""
        hits = self.hits
        if not hits or hits[0].time_ns >= cutoff_ns:
            return 0
        cut = bisect_left(hits, cutoff_ns, key=_time)
        del hits[:cut]
        return cut

    def fire(self, until_ns: int) -> list[Hit]:
        """Take the hits (the burst that reached the threshold) and suppress until ``until_ns``."""
        hits, self.hits = self.hits, []
        self.suppressed_until = until_ns
        return hits


class KeyedWindows:
    """Windows by key, least recently touched first, at most ``max_keys`` of them."""

    __slots__ = ("_windows", "max_keys")

    def __init__(self, max_keys: int) -> None:
        self.max_keys = max_keys
        self._windows: OrderedDict[str, Window] = OrderedDict()

    def touch(self, key: str) -> Window:
        """The key's window (created if needed), marked most recently used; creating one beyond
        ``max_keys`` evicts the least recently used key."""
        windows = self._windows
        window = windows.get(key)
        if window is not None:
            windows.move_to_end(key)
            return window
        if len(windows) >= self.max_keys:
            windows.popitem(last=False)
        window = windows[key] = Window()
        return window

    def put(self, key: str, window: Window) -> None:
        self._windows[key] = window

    def expire(self, reference_ns: int, window_ns: int) -> int:
        """Prune every window to ``reference_ns - window_ns`` and drop keys left with no hits
        and no running suppression; return how many keys were dropped."""
        cutoff = reference_ns - window_ns
        stale = []
        for key, window in self._windows.items():
            window.prune(cutoff)
            if not window.hits and window.suppressed_until <= reference_ns:
                stale.append(key)
        for key in stale:
            del self._windows[key]
        return len(stale)

    def items(self) -> Iterator[tuple[str, Window]]:
        return iter(self._windows.items())

    def __len__(self) -> int:
        return len(self._windows)

    def partial(self) -> int:
        """How many keys have hits waiting for more (open windows)."""
        return sum(1 for w in self._windows.values() if w.hits)
