"""Who may call what: the credential check of every route that has one, as FastAPI dependencies.

Today's credentials are the bearer tokens of the configuration's ``type: http`` sources:

* **ingest** (:func:`token_holder`): a request carrying a bearer token belongs to the source
  with that token; one without a token to the first source that has none; when every source
  has a token, a request without one is a 401, and so is a token no source has.
* **pattern reviews** (:func:`require_token` over :func:`write_tokens`): reviews are write
  access, so when http sources have tokens a review needs one of them too (there is no separate
  API token in the configuration yet).

Every other route answers anonymously. Access control (issue 15: users, API tokens, roles)
belongs here too: a route states what it needs as a dependency from this module, and nothing
else in the API compares credentials.

A check that fails raises :class:`~logfactory.errors.AuthError` (re-exported here), which the
handler that :func:`install` registers answers the API's way (``{"error": ...}``; a 401 with
``WWW-Authenticate: Bearer``). The dependencies read ``Authorization`` from the request
instead of declaring it as a parameter, so the OpenAPI description lists only what each route
declares. Tokens are compared in constant time, against every configured token, so timing says
nothing about which one (or how much of one) matched.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import Response

from logfactory.api.responses import error_response
from logfactory.config import Config
from logfactory.errors import AuthError

__all__ = [
    "AuthError",
    "install",
    "match_bearer",
    "require_token",
    "token_holder",
    "unauthorized",
    "write_tokens",
]

T = TypeVar("T")


def unauthorized() -> AuthError:
    """No credential, or one this node does not know: 401, and how to authenticate."""
    return AuthError(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})


async def answer(request: Request, exc: Exception) -> Response:
    """The answer to an :class:`AuthError` raised while a route's dependencies were solved."""
    if not isinstance(exc, AuthError):  # registered for AuthError only
        raise exc
    return error_response(exc.status, exc.message, exc.headers)


def install(app: FastAPI) -> None:
    """Make ``app`` answer :class:`AuthError` (every app that includes a router of the API)."""
    app.add_exception_handler(AuthError, answer)


def match_bearer(header: str | None, tokens: Sequence[str]) -> int | None:
    """Index of the token ``header`` carries as ``Bearer <token>``, or None."""
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return None
    given_bytes = given.strip().encode()
    # compare against every token (no early exit) so timing says nothing about which matched
    hits = [hmac.compare_digest(given_bytes, t.encode()) for t in tokens]
    return hits.index(True) if any(hits) else None


def token_holder(holders: Sequence[tuple[str | None, T]]) -> Callable[[Request], Awaitable[T]]:
    """A dependency giving the holder (of ``(token, holder)`` pairs) whose token the request's
    bearer carries; a request without ``Authorization`` gets the first holder without a token.
    :func:`unauthorized` when there is no such holder."""
    with_token = [(token, holder) for token, holder in holders if token]
    tokens = [token for token, _ in with_token]
    open_holders = [holder for token, holder in holders if not token][:1]

    async def holder_of(request: Request) -> T:
        header = request.headers.get("authorization")
        if header:
            hit = match_bearer(header, tokens)
            if hit is not None:
                return with_token[hit][1]
        elif open_holders:
            return open_holders[0]
        raise unauthorized()

    return holder_of


def require_token(tokens: Sequence[str]) -> Callable[[Request], Awaitable[None]]:
    """A dependency that lets a request through when its bearer is one of ``tokens``, or when
    there are none; :func:`unauthorized` otherwise."""
    required = list(tokens)

    async def check(request: Request) -> None:
        if required and match_bearer(request.headers.get("authorization"), required) is None:
            raise unauthorized()

    return check


def write_tokens(config: Config) -> list[str]:
    """The tokens that grant write access beyond ingest (pattern reviews): the http sources'."""
    return [s.token for s in config.sources if s.type == "http" and s.token]
