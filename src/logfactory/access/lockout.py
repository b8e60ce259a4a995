"""The lock-out of password guessers: failed logins counted per user name and per client address.

After ``max_failures`` failures in a row, a user name or an address is locked for
``lockout_s``; each further lock-out of the same key doubles, up to ``max_lockout_s``. The
login route asks :meth:`LoginThrottle.retry_after` before it checks a password (a locked
caller gets 429 and ``Retry-After`` without costing a hash), and reports the outcome with
:meth:`~LoginThrottle.failed` or :meth:`~LoginThrottle.succeeded`.

Both keys, because each alone is beaten: counting per user only lets one address try one
password on every user name (or on names that do not exist, which must not be told apart
from wrong passwords); counting per address only lets a botnet try every password on one
user. A success clears the user's streak and history; it clears the address's streak only
when every failure of it was for that same user (the owner who mistyped), so a guesser who
holds one valid account cannot wash the streak of its guesses at other users with a login
of its own.

Keys, so that memory does not depend on what an attacker sends:

* a user name is held as a 16-byte digest of its case-folded form (never the name: people
  type passwords into the name field), so a megabyte-long name costs what a short one does;
* an IPv6 address is counted by its /64, the block one subscriber gets: one host owns
  2**64 addresses and would otherwise get a fresh streak with each.

The table is bounded (``max_tracked`` keys), and its eviction cannot be used to unlock a
locked key cheaply:

* a key whose lock is running is never evicted while any unlocked key is held; only a
  table full of running locks gives way, and then the lock that ends soonest goes;
* unlocked keys (a streak below ``max_failures``, or the doubling history of a lock that
  ended) go least recently failed first. Pushing a victim's streak or history out takes
  ``max_tracked`` (100,000) fresh failed logins after the victim's last one; each is a
  request (and a password hash) the node answers, and an address can make only
  ``max_failures`` of them before it is locked itself, so that is 20,000 addresses per
  ``max_failures - 1`` guesses saved;
* a streak or history forgets itself after ``max_lockout_s`` without a failure, which is
  what keeps a table that no attacker fills from holding keys for ever.

Thread-safe: the login route hashes passwords in a thread pool and reports from there.
"""

from __future__ import annotations

import hashlib
import heapq
import ipaddress
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["DEFAULT_MAX_TRACKED", "MAX_LOCKOUT_S", "LoginThrottle", "address_key", "user_key"]

MAX_LOCKOUT_S = 3600.0
"""The longest lock-out, however often a key was locked before (the docs say an hour)."""
DEFAULT_MAX_TRACKED = 100_000
"""Keys held at most: about 25 MB when full (241 bytes a key, measured)."""

Kind = Literal["user", "address"]
_MIXED = b""  # an address's failures were for more than one user name


@dataclass(slots=True)
class _Streak:
    """One key's failures: how many in a row, how often it was locked, until when."""

    kind: Kind
    failures: int = 0
    level: int = 0  # lock-outs so far: the next one lasts lockout_s * 2**level
    until: float = 0.0  # locked while the clock is below it
    last: float = 0.0  # the last failure
    user: bytes | None = None  # addresses: the one user key its failures were for, or _MIXED


def user_key(name: str) -> bytes:
    """The table's key for a user name: a digest of its case-folded, trimmed form."""
    digest = hashlib.blake2b(name.strip().casefold().encode(), digest_size=16).digest()
    return b"u" + digest


def address_key(addr: str) -> bytes:
    """The table's key for a client address: IPv6 by its /64, anything else as given."""
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return b"a" + addr.encode()[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # ::ffff:192.0.2.9 is 192.0.2.9
            return b"a" + ip.ipv4_mapped.packed
        return b"a" + ip.packed[:8] + b"/64"
    return b"a" + ip.packed


class LoginThrottle:
    """Failed logins per user name and per client address (see the module docstring).

    ``on_lock(kind)`` hears ``"user"`` or ``"address"`` each time a lock-out begins (the
    node's counter); it is called outside the throttle's lock.
    """

    def __init__(
        self,
        max_failures: int,
        lockout_s: float,
        max_lockout_s: float = MAX_LOCKOUT_S,
        clock: Callable[[], float] = time.monotonic,
        max_tracked: int = DEFAULT_MAX_TRACKED,
        on_lock: Callable[[Kind], None] | None = None,
    ) -> None:
        if max_failures < 1 or lockout_s <= 0 or max_tracked < 2:
            raise ValueError("max_failures >= 1, lockout_s > 0 and max_tracked >= 2 needed")
        self.max_failures = max_failures
        self.lockout_s = lockout_s
        self.max_lockout_s = max(max_lockout_s, lockout_s)
        self.max_tracked = max_tracked
        self._clock = clock
        self._on_lock = on_lock
        self._lock = threading.Lock()
        self._free: OrderedDict[bytes, _Streak] = OrderedDict()  # unlocked; LRU first
        self._locked: dict[bytes, _Streak] = {}
        self._ends: list[tuple[float, bytes]] = []  # heap of (until, key); stale ones skipped
        self.lockouts = 0

    def __len__(self) -> int:
        """Keys held now (never more than ``max_tracked``)."""
        with self._lock:
            return len(self._free) + len(self._locked)

    def retry_after(self, user: str, addr: str) -> float | None:
        """Seconds until ``user`` may try again from ``addr``; None when it may try now."""
        keys = (user_key(user), address_key(addr))
        with self._lock:
            now = self._clock()
            self._release_ended(now)
            waits = [s.until - now for k in keys if (s := self._locked.get(k)) is not None]
        return max(waits) if waits else None

    def failed(self, user: str, addr: str) -> float | None:
        """Count a failed login of ``user`` from ``addr``; the lock-out it began, if any."""
        ukey, akey = user_key(user), address_key(addr)
        began: list[tuple[Kind, float]] = []
        with self._lock:
            now = self._clock()
            self._release_ended(now)
            pairs: tuple[tuple[bytes, Kind], ...] = ((ukey, "user"), (akey, "address"))
            for key, kind in pairs:
                streak = self._streak(key, kind, now)
                if streak is None:  # locked already: a caller that did not ask first
                    continue
                streak.failures += 1
                streak.last = now
                if kind == "address":
                    streak.user = ukey if streak.user in (None, ukey) else _MIXED
                if streak.failures >= self.max_failures:
                    began.append((kind, self._lock_out(key, streak, now)))
            self.lockouts += len(began)
        if self._on_lock is not None:
            for kind, _ in began:
                self._on_lock(kind)
        return max((d for _, d in began), default=None)

    def succeeded(self, user: str, addr: str) -> None:
        """A login of ``user`` from ``addr`` succeeded: the user's streak and history are
        cleared, and the address's streak when all its failures were for this user."""
        ukey, akey = user_key(user), address_key(addr)
        with self._lock:
            self._free.pop(ukey, None)
            self._locked.pop(ukey, None)  # its heap entry goes stale
            streak = self._free.get(akey)
            if streak is not None and streak.user in (None, ukey):
                streak.failures = 0
                streak.user = None
                if not streak.level:
                    del self._free[akey]

    # -- the table ----------------------------------------------------------------------
    def _streak(self, key: bytes, kind: Kind, now: float) -> _Streak | None:
        """The unlocked streak of ``key`` (made, or forgotten and made anew, as needed) moved
        to the most recent end; None while ``key`` is locked."""
        if key in self._locked:
            return None
        streak = self._free.pop(key, None)
        if streak is not None and now - streak.last >= self.max_lockout_s:
            streak = None  # quiet for that long: a new streak, no history
        if streak is None:
            if len(self._free) + len(self._locked) >= self.max_tracked:
                self._evict()
            streak = _Streak(kind)
        self._free[key] = streak
        return streak

    def _lock_out(self, key: bytes, streak: _Streak, now: float) -> float:
        duration = min(self.lockout_s * 2.0**streak.level, self.max_lockout_s)
        streak.level += 1
        streak.failures = 0
        streak.user = None
        streak.until = now + duration
        del self._free[key]
        self._locked[key] = streak
        heapq.heappush(self._ends, (streak.until, key))
        if len(self._ends) > 2 * self.max_tracked:  # stale entries (cleared by a success)
            self._ends = [(s.until, k) for k, s in self._locked.items()]
            heapq.heapify(self._ends)
        return duration

    def _release_ended(self, now: float) -> None:
        """Locks that have ended go back among the unlocked keys (keeping their history)."""
        ends = self._ends
        while ends and ends[0][0] <= now:
            until, key = heapq.heappop(ends)
            streak = self._locked.get(key)
            if streak is not None and streak.until == until:
                del self._locked[key]
                streak.last = max(streak.last, until)  # history counts from the lock's end
                self._free[key] = streak

    def _evict(self) -> None:
        """Room for one key: the least recently failed unlocked one, else the running lock
        that ends soonest (see the module docstring for why this order)."""
        if self._free:
            self._free.popitem(last=False)
            return
        while self._ends:
            until, key = heapq.heappop(self._ends)
            streak = self._locked.get(key)
            if streak is not None and streak.until == until:
                del self._locked[key]
                return
