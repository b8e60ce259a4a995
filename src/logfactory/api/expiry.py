"""When a credential made or changed through the API ends: the ``expires_in`` a client sends.

Users and tokens take the same field, so the rule is said once here, beside the other modules
that several route modules share (route modules never import each other). It is also the one
place outside the config package that reads a duration (``90d``, ``12h``, seconds): a client's
value, read with the configuration's own grammar so that both accept the same text.
"""

from __future__ import annotations

from logfactory.config.units import parse_duration

__all__ = ["expiry", "new_end"]


def expiry(expires_in: str | float | None, now: float) -> float | None:
    """When a new credential ends, from ``expires_in`` (a duration: ``90d``, seconds); None:
    never. ValueError with the fix for what is not a duration, or not more than 0."""
    if expires_in is None:
        return None
    seconds = parse_duration(expires_in)
    if seconds <= 0:
        raise ValueError("expires_in must be more than 0 (e.g. 90d)")
    return now + seconds


def new_end(expires_in: str | float, now: float) -> float:
    """When a credential whose expiry is changed to ``expires_in`` ends (``0s``: ``now``).
    ValueError with the fix for what is not a duration, or less than 0."""
    seconds = parse_duration(expires_in)
    if seconds < 0:
        raise ValueError("expires_in must be 0 (now) or more")
    return now + seconds
