"""A rate limit on expensive queries (topic tails, pattern lists, searches), per credential.

Each caller has a token bucket: ``burst`` queries at once, then ``rate`` a second on average.
A caller is its credential (``request.state.principal.key``, set by the API's credential
check) or, for a request that has none, its client address. A query beyond the bucket gets
429 with ``Retry-After`` (the whole seconds until a token is back), and the node's
``limited_query`` counter goes up; everybody else's buckets are untouched, which is the
point: one script polling a tail in a loop cannot take the node's threads from the others.

The buckets are bounded (``max_keys``). A bucket left alone for ``burst / rate`` seconds is
full, which is the same as not having one, so the least recently used bucket is the one
dropped to make room: it is full unless ``max_keys`` distinct callers queried within the
last ``burst / rate`` seconds (2 s by default), and even then dropping it gives that caller
at most ``burst`` queries more, never a way to run unbounded.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from fastapi import Request

from logfactory.errors import RateLimited

__all__ = ["DEFAULT_MAX_KEYS", "QueryLimiter", "caller_key", "limit_queries"]

DEFAULT_MAX_KEYS = 10_000
"""Buckets held at most (about 280 bytes each with an IPv6 address as the key: 3 MB)."""


class QueryLimiter:
    """Token buckets, one per caller key (see the module docstring). Thread-safe."""

    def __init__(
        self,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        if rate <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("rate > 0, burst >= 1 and max_keys >= 1 needed")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, when

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> float | None:
        """One query for ``key``: None when it may run now, else the seconds until it may."""
        with self._lock:
            now = self._clock()
            held = self._buckets.pop(key, None)
            if held is None:
                tokens = float(self.burst)
                if len(self._buckets) >= self.max_keys:
                    self._buckets.popitem(last=False)
            else:
                tokens, then = held
                tokens = min(float(self.burst), tokens + (now - then) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return None
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


def caller_key(request: Request) -> str:
    """Who a request counts against: its credential's key, else ``addr:<client address>``
    (a dependency listed before the credential check, which a route should not do)."""
    principal = getattr(request.state, "principal", None)
    key = getattr(principal, "key", None)
    if isinstance(key, str) and key:
        return key
    return f"addr:{request.client.host if request.client else ''}"


def limit_queries(
    limiter: QueryLimiter, count: Callable[[str], None]
) -> Callable[[Request], Awaitable[None]]:
    """A route dependency spending one of the caller's queries, or raising
    :class:`~logfactory.errors.RateLimited` (429, ``Retry-After``). List it after the
    credential check, so that it counts the credential rather than the address."""

    async def limited(request: Request) -> None:
        wait = limiter.take(caller_key(request))
        if wait is None:
            return
        count("query")
        seconds = max(1, math.ceil(wait))
        raise RateLimited(
            f"too many queries (at most {limiter.burst} at once, then {limiter.rate:g} a "
            f"second); retry in {seconds} s",
            seconds,
        )

    return limited
