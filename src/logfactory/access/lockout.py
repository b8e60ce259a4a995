"""Placeholder until the lock-out module lands (issue 15): no lock-out yet."""

from __future__ import annotations

__all__ = ["LoginThrottle"]


class LoginThrottle:
    """Counts nothing yet."""

    def __init__(self, max_failures: int, lockout_s: float) -> None:
        self.max_failures = max_failures
        self.lockout_s = lockout_s

    def retry_after(self, user: str, addr: str) -> float | None:
        return None

    def failed(self, user: str, addr: str) -> None:
        return None

    def succeeded(self, user: str, addr: str) -> None:
        return None
