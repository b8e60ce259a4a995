"""Who may do what on a node: roles, credentials (API tokens, users and their login sessions),
the audit trail and the lock-out of password guessers.

The HTTP API (:mod:`logfactory.api.auth`) asks this package who a request comes from; the CLI
(``logfactory users``, ``tokens``, ``token``) and the node's first start manage what it stores.
Everything lives in one SQLite file in the data directory, readable by its owner only, so every
process of a node on that directory (``run``, ``serve``, ``collect``, the CLI) sees the same
credentials, and a token revoked from the command line is refused at the next request.
"""

from __future__ import annotations

from logfactory.access.principal import Principal
from logfactory.access.roles import ROLES, Role, role_allows

__all__ = ["ROLES", "Principal", "Role", "role_allows"]
