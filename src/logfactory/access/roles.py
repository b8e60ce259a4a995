"""The four roles and what each may do.

``viewer`` < ``operator`` < ``admin`` is a ladder: each has every right of the one below
(search, subscribe, stats and metrics; then reviews, acknowledgements; then rules, assets,
users, tokens, configuration). ``ingest`` stands beside it: an edge collector's token may post
logs and nothing else, so a stolen collector credential reads nothing. ``admin`` may ingest
too, so the node's own admin token (``logfactory token``) works for the README's ``curl``.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ROLES", "Role", "role_allows"]


class Role(StrEnum):
    """A credential's role; the value is how configs, the API and the CLI write it."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"
    INGEST = "ingest"


#: every role, in the order the docs and ``--help`` list them
ROLES: tuple[Role, ...] = (Role.VIEWER, Role.OPERATOR, Role.ADMIN, Role.INGEST)

_LADDER = {Role.VIEWER: 1, Role.OPERATOR: 2, Role.ADMIN: 3}


def role_allows(have: Role, need: Role) -> bool:
    """Whether a credential of role ``have`` may do what needs ``need``."""
    if need is Role.INGEST:
        return have in (Role.INGEST, Role.ADMIN)
    return _LADDER.get(have, 0) >= _LADDER[need]
