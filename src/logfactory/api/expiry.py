"""When a credential made through the API ends: the ``expires_in`` of a new user or token.

Users and tokens take the same field, so the rule is said once here, beside the other modules
that several route modules share (route modules never import each other).
"""

from __future__ import annotations

from logfactory.config.units import parse_duration

__all__ = ["expiry"]


def expiry(expires_in: str | float | None, now: float) -> float | None:
    """The time a credential ends, from ``expires_in`` (a duration: ``90d``, seconds); None:
    never. ValueError with the fix for what is not a duration."""
    if expires_in is None:
        return None
    seconds = parse_duration(expires_in)
    if seconds <= 0:
        raise ValueError("expires_in must be more than 0 (e.g. 90d)")
    return now + seconds
