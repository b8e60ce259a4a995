"""Rate-limited logging for errors that repeat: the first in full, then a count.

A peer that is down, or a sender of garbage, makes the same error many times a second; logged
each time, it buries everything else in the log (a Kafka input with its broker down wrote 485
lines in 25 s). :class:`RateLimitedLog` logs the first occurrence of each distinct *key* at
once, then at most one line per ``interval`` for that key, and that line says how many were
left out since the previous one. Counting every occurrence stays the job of the stats counters.

Thread-safe: librdkafka's callbacks run on the consumer's thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable

__all__ = ["RateLimitedLog"]


class RateLimitedLog:
    """``log(level, key, msg, *args)`` for ``logger``: see the module docstring.

    ``max_keys`` bounds the memory of keys seen (the oldest is forgotten first), so keys made
    from error texts cannot grow without end. ``clock`` is for tests."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 30.0,
        *,
        max_keys: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[Hashable, list[float]] = {}  # key -> [next time allowed, suppressed]

    def log(self, level: int, key: Hashable, msg: str, *args: object) -> bool:
        """Log ``msg % args`` unless ``key`` was logged less than ``interval`` ago; True if
        it was logged."""
        with self._lock:
            now = self._clock()
            entry = self._keys.get(key)
            if entry is not None and now < entry[0]:
                entry[1] += 1
                return False
            suppressed = int(entry[1]) if entry is not None else 0
            if entry is None and len(self._keys) >= self.max_keys:
                del self._keys[next(iter(self._keys))]
            self._keys.pop(key, None)  # re-inserted last: the dict stays oldest-first
            self._keys[key] = [now + self.interval, 0]
        if suppressed:
            if not args:  # the text was not a format string: its own % must stay literal
                msg = msg.replace("%", "%%")
            msg = f"{msg} (%d more since the last report)"
            args = (*args, suppressed)
        self.logger.log(level, msg, *args)
        return True

    def warning(self, key: Hashable, msg: str, *args: object) -> bool:
        return self.log(logging.WARNING, key, msg, *args)
