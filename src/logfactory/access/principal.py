"""Who a request comes from, once :mod:`logfactory.api.auth` has checked its credential."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from logfactory.access.roles import Role, role_allows
from logfactory.event import topic_for_type

__all__ = ["Principal"]


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    ``kind`` says how it proved who it is: an API token (``token``), a console login session
    (``session``: its writes need the CSRF token too) or the bearer token of an ``http``
    source in the configuration (``source``, role ``ingest``). ``key`` names the credential
    uniquely (``token:<id>``, ``user:<name>``, ``source:<name>``): what per-credential limits
    count and the audit trail names as the actor. ``scopes`` limit a token further: entries
    ``type:JOB_STATUS`` (event types it may subscribe to, and their topics it may read) and
    ``topic:logs.parsed`` (topics it may read; ``topic:events.ALERT`` also lets it subscribe to
    ALERT); entries add up, and empty means no limit beyond the role.
    """

    kind: Literal["token", "session", "source"]
    key: str
    name: str
    role: Role
    scopes: tuple[str, ...] = field(default=())

    def allows(self, need: Role) -> bool:
        """Whether this caller's role covers ``need``."""
        return role_allows(self.role, need)

    def may_read_type(self, event_type: str) -> bool:
        """Whether the scopes let this caller subscribe to ``event_type``: ``type:X``, or the
        topic it is published on (``topic:events.X``, which lets the caller tail it too)."""
        topic = topic_for_type(event_type)
        return self._in_scope("type", event_type) or f"topic:{topic}" in self.scopes

    def may_read_topic(self, topic: str) -> bool:
        """Whether the scopes let this caller read ``topic`` (event topics by their type's
        scope too: ``type:ALERT`` covers ``events.ALERT``)."""
        if self._in_scope("topic", topic):
            return True
        return (
            topic.startswith("events.") and f"type:{topic.removeprefix('events.')}" in self.scopes
        )

    def _in_scope(self, kind: str, value: str) -> bool:
        if not self.scopes:
            return True
        return f"{kind}:{value}" in self.scopes
