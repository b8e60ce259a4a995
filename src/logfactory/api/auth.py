"""Who may call what: the credential check of every route, as FastAPI dependencies.

Every route but ``/api/v1/health`` and the login itself declares the role it needs with
``Depends(state.auth.requires(Role.X))``; nothing else in the API compares credentials. The
dependency finds who the request comes from and answers 401 (no credential, or one the node
does not know) or 403 (a credential whose role or scopes do not cover the route). A request
proves who it is with, in this order:

* ``Authorization: Bearer <token>``: the token of an ``http`` source of the configuration
  (role ``ingest``, for that source) or an API token of the access store (``lf_...``);
* the console's login cookie (``lf_session``): a user's session. Browsers send cookies by
  themselves, so a cookie-authenticated write (POST, PUT, PATCH, DELETE) must also carry the
  session's CSRF token in ``X-CSRF-Token``, which another site's page cannot read. Bearer
  tokens need no CSRF token: a browser never adds them on its own.

A check that fails raises :class:`~logfactory.errors.AuthError`, which :func:`answer` (the
handler :func:`logfactory.api.safety.install` registers) answers the API's way
(``{"error": ...}``; a 401 with ``WWW-Authenticate: Bearer``). The store is read on the event
loop: a primary-key read in WAL mode, microseconds, and never blocked by a writer; the rare
writes (a token's first use from a new address, a session's last use) go to a worker thread.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from logfactory.access import Principal, Role
from logfactory.access.store import AccessStore
from logfactory.api.responses import error_response
from logfactory.config import Config
from logfactory.errors import AuthError, RequestRefused

__all__ = [
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "AuthError",
    "Authenticator",
    "answer",
    "client_address",
    "forbidden",
    "match_bearer",
    "unauthorized",
]

SESSION_COOKIE = "lf_session"
CSRF_COOKIE = "lf_csrf"
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: (token, address) pairs known to have been seen, kept in memory to skip the store's read
_MAX_SEEN = 10_000

_bearer = HTTPBearer(auto_error=False, description="an API token (logfactory token / tokens)")
_cookie = APIKeyCookie(
    name=SESSION_COOKIE, auto_error=False, description="the console's login session"
)


def unauthorized(message: str = "missing or wrong credential") -> AuthError:
    """No credential, or one this node does not know: 401, and how to authenticate."""
    return AuthError(
        401,
        f"{message}: send 'Authorization: Bearer TOKEN' (logfactory token prints one on the "
        "node's machine) or log in",
        {"WWW-Authenticate": "Bearer"},
    )


def forbidden(message: str) -> AuthError:
    """A known credential that may not do this: 403."""
    return AuthError(403, message)


async def answer(request: Request, exc: Exception) -> Response:
    """The answer to a :class:`RequestRefused` (an :class:`AuthError` among them) raised while
    a route's dependencies were solved or its body read. A person's browser that meets a 401
    gets a page linking to the login form, so the API's own pages (``/docs``) lead somewhere."""
    if not isinstance(exc, RequestRefused):  # registered for RequestRefused only
        raise exc
    if exc.status == 401 and _wants_html(request):
        return HTMLResponse(_LOGIN_FIRST, status_code=401, headers=exc.headers)
    return error_response(exc.status, exc.message, exc.headers)


def _wants_html(request: Request) -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("accept", "")


_LOGIN_FIRST = (
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Log in</title></head>'
    '<body><p>This needs a login: <a href="/login">log in</a>.</p></body></html>\n'
)


def match_bearer(header: str | None, tokens: Sequence[str]) -> int | None:
    """Index of the token ``header`` carries as ``Bearer <token>``, or None."""
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return None
    return matching_token(given.strip(), tokens)


def matching_token(given: str, tokens: Sequence[str]) -> int | None:
    """Index of ``given`` among ``tokens``, or None."""
    given_bytes = given.encode()
    # compare against every token (no early exit) so timing says nothing about which matched
    hits = [hmac.compare_digest(given_bytes, t.encode()) for t in tokens]
    return hits.index(True) if any(hits) else None


def client_address(request: Request) -> str:
    """The peer's address, as the audit trail and the per-address limits name it."""
    return request.client.host if request.client else "-"


def source_tokens(config: Config) -> list[tuple[str, str]]:
    """``(token, source name)`` of the http sources that have a token of their own."""
    return [(s.token, s.ingest_name) for s in config.sources if s.type == "http" and s.token]


class Authenticator:
    """Checks the credentials of one app's requests against ``store`` and the http sources'
    tokens in ``config``."""

    def __init__(self, store: AccessStore, config: Config) -> None:
        self.store = store
        self._sources = source_tokens(config)
        self._source_tokens = [token for token, _ in self._sources]
        self._idle_s = float(config.http.session_idle_timeout)
        self._seen: set[tuple[str, str]] = set()

    def requires(self, need: Role, *, scoped: bool = False) -> Callable[..., Awaitable[Principal]]:
        """The dependency of a route that needs role ``need``; it gives the caller.

        A token with scopes is limited to what they name, so it may call only the routes that
        check them (``scoped=True``: subscribe, topic tails; and ingest and who-am-I, which
        read nothing): every other route would read beyond its scopes, and refuses it (403).

        The function carries ``required_role`` so that tests (and the docs) can list what each
        route needs by walking the app's routes.
        """

        async def caller(
            request: Request,
            bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
            session_id: str | None = Depends(_cookie),
        ) -> Principal:
            principal = await self.identify(request, bearer, session_id)
            if not principal.allows(need):
                raise forbidden(
                    f"this needs the role {need} (or one above it); "
                    f"{principal.name!r} has {principal.role}"
                )
            if principal.scopes and not scoped:
                raise forbidden(
                    f"this token is limited to {', '.join(principal.scopes)}; this route reads "
                    "beyond them (scoped tokens may subscribe and tail topics only)"
                )
            request.state.principal = principal
            return principal

        caller.required_role = need  # type: ignore[attr-defined]
        return caller

    async def identify(
        self,
        request: Request,
        bearer: HTTPAuthorizationCredentials | None,
        session_id: str | None,
    ) -> Principal:
        """Who ``request`` comes from, or :class:`AuthError`."""
        header = request.headers.get("authorization")
        if header:
            if bearer is None:
                raise unauthorized("the Authorization header is not 'Bearer TOKEN'")
            return await self._bearer(bearer.credentials, client_address(request))
        if session_id:
            return await self._session(request, session_id)
        raise unauthorized()

    async def _bearer(self, token: str, address: str) -> Principal:
        hit = matching_token(token, self._source_tokens)
        if hit is not None:
            name = self._sources[hit][1]
            return Principal("source", f"source:{name}", name, Role.INGEST)
        info = self.store.check_token(token)
        if info is None:
            raise unauthorized("unknown, expired or revoked token")
        if (info.id, address) not in self._seen:
            await run_in_threadpool(self._note_address, info.id, info.name, address)
        return Principal("token", f"token:{info.id}", info.name, info.role, info.scopes)

    def _note_address(self, token_id: str, name: str, address: str) -> None:
        if self.store.note_address(token_id, address):
            self.store.audit(
                f"token:{token_id}",
                "token_new_address",
                target=name,
                address=address,
            )
        if len(self._seen) >= _MAX_SEEN:
            self._seen.clear()
        self._seen.add((token_id, address))

    async def _session(self, request: Request, session_id: str) -> Principal:
        session = self.store.session(session_id, self._idle_s)
        if session is None:
            raise unauthorized("the login session has ended")
        if request.method not in _SAFE_METHODS:
            given = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(given.encode(), session.csrf.encode()):
                raise forbidden(
                    f"a write with a login cookie needs the session's CSRF token in {CSRF_HEADER}"
                )
        if session.touch_due:
            await run_in_threadpool(self.store.touch_session, session_id)
        user = session.user
        return Principal("session", f"user:{user.name}", user.name, user.role)


def required_role(dependency: Any) -> Role | None:
    """The role a dependency made by :meth:`Authenticator.requires` asks for, else None."""
    role = getattr(dependency, "required_role", None)
    return role if isinstance(role, Role) else None
