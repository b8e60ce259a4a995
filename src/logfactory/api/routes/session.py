"""Logging in and out: ``/api/v1/auth/*`` and the ``/login`` page.

A user logs in with name and password (``POST /api/v1/auth/login``) and gets a session: an
``lf_session`` cookie (HttpOnly, so no script reads it; SameSite=Strict, so no other site's
page sends it; Secure over HTTPS) and a CSRF token, in the answer and in the readable
``lf_csrf`` cookie, that every cookie-authenticated write must repeat in ``X-CSRF-Token``.
A session ends at ``http.session_lifetime``, after ``http.session_idle_timeout`` unused, at
logout, and when the user's password, role or standing changes.

Password guessing meets :class:`~logfactory.access.lockout.LoginThrottle`: after
``http.login_max_failures`` failures for one name or from one address, that name or address
gets 429 with ``Retry-After`` (no password is checked meanwhile), for ``http.login_lockout``
doubling at each further lock-out; the 429 is held up to two seconds (:class:`Tarpit`) so a
guesser that ignores ``Retry-After`` cannot turn refusals into a flood. Every login, failed
login and logout is in the audit trail. At most :data:`MAX_PASSWORD_CHECKS` logins and
password changes are checked at once (Argon2 is slow and large on purpose); more get 503 with
``Retry-After``, counted in the stats as ``api.limited_login_busy``.

``/login`` (and its script) are the only pages served without a credential besides health:
a browser has to load the form before it has one. They hold no data of the node.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response

from logfactory.access import Principal, Role
from logfactory.access.credentials import MAX_PASSWORD_WORK, USER_NAME, password_problem
from logfactory.access.lockout import LoginThrottle
from logfactory.access.store import AccessStore, UserInfo
from logfactory.api.auth import CSRF_COOKIE, SESSION_COOKIE, client_address
from logfactory.api.context import ApiState, NodeContext
from logfactory.api.json_body import read_json
from logfactory.api.responses import error_response
from logfactory.errors import RateLimited, RequestRefused

__all__ = ["LOGIN_JS", "MAX_PASSWORD_CHECKS", "PasswordChecks", "router"]

T = TypeVar("T")

#: logins and password changes being checked at once (running or queued for an Argon2 slot)
MAX_PASSWORD_CHECKS = 4 * MAX_PASSWORD_WORK


class PasswordChecks:
    """Password checks in worker threads, at most ``limit`` at once, queued or running.

    Each is an Argon2 computation (64 MiB, a tenth of a second; at most
    :data:`~logfactory.access.credentials.MAX_PASSWORD_WORK` run at once), so a flood of
    logins would otherwise hold every worker thread of the server while it waits, and ingest
    and reads with it. Beyond the limit: 503 with ``Retry-After``, counted by ``on_busy``.
    """

    def __init__(self, limit: int, on_busy: Callable[[], None]) -> None:
        self.limit = limit
        self.in_flight = 0  # only touched on the event loop: no lock
        self._on_busy = on_busy

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self.in_flight >= self.limit:
            self._on_busy()
            raise RequestRefused(
                503, "too many logins at once; retry in a moment", {"Retry-After": "1"}
            )
        self.in_flight += 1
        try:
            return await run_in_threadpool(fn, *args)
        finally:
            self.in_flight -= 1


class LoginBody(msgspec.Struct, forbid_unknown_fields=True):
    user: str
    password: str


class PasswordBody(msgspec.Struct, forbid_unknown_fields=True):
    current: str
    new: str


def _set_cookies(response: Response, request: Request, sid: str, csrf: str, max_age: int) -> None:
    secure = request.url.scheme == "https"
    for name, value, http_only in ((SESSION_COOKIE, sid, True), (CSRF_COOKIE, csrf, False)):
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/",
            secure=secure,
            httponly=http_only,
            samesite="strict",
        )


def check_login(
    store: AccessStore, throttle: LoginThrottle, body: LoginBody, address: str
) -> UserInfo:
    """The user whose name and password ``body`` holds (in a worker thread: Argon2 is slow on
    purpose), or a 401, counted by ``throttle`` and written to the audit trail."""
    user = None
    named = USER_NAME.fullmatch(body.user) is not None
    if named and len(body.password) <= 1024:
        user = store.verify_password(body.user, body.password)
    if user is None:
        throttle.failed(body.user, address)
        # a name no user can have is the sender's text: kept escaped, in the details, so
        # line breaks or terminal controls in it cannot forge lines of a printed trail
        actor = f"user:{body.user}" if named else "user:?"
        detail = None if named else {"name": ascii(body.user[:64])}
        store.audit(actor, "login_failed", outcome="refused", address=address, detail=detail)
        raise RequestRefused(401, "wrong user name or password")
    throttle.succeeded(body.user, address)
    return user


def start_session(
    store: AccessStore, user: UserInfo, lifetime: float, address: str
) -> tuple[str, str, float]:
    """A new session of ``user``: ``(session id, csrf token, expires)``; audited."""
    opened = store.open_session(user.name, lifetime, address)
    store.audit(f"user:{user.name}", "login", address=address)
    return opened


#: how long a locked-out login's refusal is held, at most; how many are held at once
TARPIT_S = 2.0
TARPIT_MAX = 256


class Tarpit:
    """Holds the answers to locked-out login attempts for a while before sending them.

    A guesser that ignores ``Retry-After`` would otherwise turn its refusals into a flood of
    cheap requests on the node's one event loop, at the cost of everyone else's; held for
    :data:`TARPIT_S`, each of its connections tries at most that often. A held answer is a
    sleeping coroutine (no thread, no CPU); at most :data:`TARPIT_MAX` are held at once, and
    beyond that the refusal goes out at once, so the pit itself stays bounded.
    """

    def __init__(self, hold_s: float = TARPIT_S, most: int = TARPIT_MAX) -> None:
        self.hold_s = hold_s
        self.most = most
        self.held = 0

    async def hold(self, wait: float) -> None:
        if self.held >= self.most:
            return
        self.held += 1
        try:
            await asyncio.sleep(min(wait, self.hold_s))
        finally:
            self.held -= 1


async def refuse_if_locked(
    throttle: LoginThrottle, state: ApiState, tarpit: Tarpit, user: str, address: str
) -> None:
    """429 (:class:`RateLimited`) while ``user`` or ``address`` is locked out, counted, after
    the tarpit's hold."""
    wait = throttle.retry_after(user, address)
    if wait is not None:
        state.limited("login")
        await tarpit.hold(wait)
        raise RateLimited(
            "too many failed logins for this user or from this address; try again later",
            max(1, math.ceil(wait)),
        )


def change_own_password(
    store: AccessStore, caller: Principal, body: PasswordBody, address: str
) -> bool:
    """Change ``caller``'s password when ``body.current`` is theirs (in a worker thread)."""
    if store.verify_password(caller.name, body.current) is None:
        store.audit(caller.key, "password_changed", outcome="refused", address=address)
        return False
    store.change_user(caller.name, password=body.new)
    store.audit(caller.key, "password_changed", target=caller.name, address=address)
    return True


def router(ctx: NodeContext, state: ApiState) -> APIRouter:
    """The login routes of the node ``ctx`` describes."""
    api = APIRouter()
    store = ctx.access
    http = ctx.config.http
    lifetime = float(http.session_lifetime)
    throttle = state.login_throttle
    tarpit = Tarpit()
    checks = PasswordChecks(MAX_PASSWORD_CHECKS, lambda: state.limited("login_busy"))
    needs_viewer = state.auth.requires(Role.VIEWER, scoped=True)

    @api.get("/login", include_in_schema=False)
    def login_page() -> HTMLResponse:
        return HTMLResponse(LOGIN_HTML)

    @api.get("/login.js", include_in_schema=False)
    def login_script() -> Response:
        return Response(LOGIN_JS, media_type="text/javascript")

    @api.post(
        "/api/v1/auth/login",
        responses={
            400: {"description": "the body is not {user, password}"},
            401: {"description": "wrong user name or password"},
            415: {"description": "not sent as application/json"},
            503: {"description": "too many logins at once; `Retry-After`"},
            429: {"description": "too many failures for this user or address; `Retry-After`"},
        },
    )
    async def login(request: Request) -> Response:
        """Log in with a user name and password: a session cookie and a CSRF token."""
        body = await read_json(request, LoginBody)
        address = client_address(request)
        # no password is checked while locked out
        await refuse_if_locked(throttle, state, tarpit, body.user, address)
        user = await checks.run(check_login, store, throttle, body, address)
        sid, csrf, expires = await run_in_threadpool(start_session, store, user, lifetime, address)
        response = JSONResponse(
            {"user": user.name, "role": str(user.role), "csrf_token": csrf, "expires": expires}
        )
        _set_cookies(response, request, sid, csrf, int(lifetime))
        return response

    @api.post("/api/v1/auth/logout")
    async def logout(request: Request, caller: Principal = Depends(needs_viewer)) -> Response:
        """End this login session (a bearer token has none: nothing happens to it)."""
        sid = request.cookies.get(SESSION_COOKIE)
        if caller.kind == "session" and sid:

            def close() -> None:
                store.close_session(sid)
                store.audit(caller.key, "logout", address=client_address(request))

            await run_in_threadpool(close)
        response = JSONResponse({"logged_out": caller.kind == "session"})
        for name in (SESSION_COOKIE, CSRF_COOKIE):
            response.delete_cookie(name, path="/")
        return response

    @api.get("/api/v1/auth/me")
    def me(caller: Principal = Depends(needs_viewer)) -> dict[str, object]:
        """Who this credential is: its name, role, kind and scopes."""
        return {
            "name": caller.name,
            "role": str(caller.role),
            "kind": caller.kind,
            "scopes": list(caller.scopes),
        }

    @api.post(
        "/api/v1/auth/password",
        responses={
            400: {"description": "the new password is too short or too long"},
            403: {"description": "the current password is wrong, or not a login session"},
        },
    )
    async def change_password(
        request: Request, caller: Principal = Depends(needs_viewer)
    ) -> Response:
        """Change the logged-in user's own password; every session of theirs ends."""
        body = await read_json(request, PasswordBody)
        if caller.kind != "session":
            return error_response(403, "log in as the user to change their password")
        problem = password_problem(body.new)
        if problem:
            return error_response(400, problem)
        address = client_address(request)
        # a stolen session guessing the current password meets the login's lock-out
        await refuse_if_locked(throttle, state, tarpit, caller.name, address)
        if not await checks.run(change_own_password, store, caller, body, address):
            throttle.failed(caller.name, address)
            return error_response(403, "the current password is wrong")
        response = JSONResponse({"changed": True, "logged_out": True})
        for name in (SESSION_COOKIE, CSRF_COOKIE):  # every session of theirs ended, this one too
            response.delete_cookie(name, path="/")
        return response

    return api


LOGIN_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>logfactory - log in</title>
<script src="login.js" defer></script></head>
<body><h1>logfactory</h1>
<form id="login"><p><label>User <input name="user" autocomplete="username" required></label></p>
<p><label>Password <input name="password" type="password" autocomplete="current-password"
required></label></p><p><button type="submit">Log in</button></p><p id="message"></p></form>
</body></html>
"""

# the page's only script, a file of its own so the page's policy needs no inline script; it
# follows ?next= only to a path of this node ("/x", never "//host" or "https:")
LOGIN_JS = """"use strict";
document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const answer = await fetch("api/v1/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user: form.get("user"), password: form.get("password") }),
  });
  if (answer.ok) {
    const next = new URLSearchParams(location.search).get("next") || "/";
    location.assign(/^\\/(?![\\/\\\\])/.test(next) ? next : "/");
  } else {
    const body = await answer.json().catch(() => ({ error: answer.statusText }));
    document.getElementById("message").textContent = body.error;
  }
});
"""
