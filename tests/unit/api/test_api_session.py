"""Console logins over the API: the session cookie's flags, CSRF on every cookie-authenticated
write, and the ends of a session (logout, a password change, a disabled user)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers.access import PASSWORD, login, new_user, session_headers
from tests.helpers.clients import TestClient, bearer, make_client
from tests.helpers.waiting import wait_for

from logfactory.access import Role
from logfactory.api import NodeContext, create_app
from logfactory.api.routes.session import MAX_PASSWORD_CHECKS, Tarpit
from logfactory.bus.local import LocalBus
from logfactory.config import Config, parse_config


@pytest.fixture
def api(tmp_path: Path, local_bus: LocalBus) -> Iterator[tuple[TestClient, NodeContext]]:
    """The API with no credential of its own: each request carries what the test gives it."""
    c, ctx = make_client(tmp_path, local_bus, Config(), role=None)
    with c:
        yield c, ctx
    ctx.producer.close()


def cookie_flags(set_cookie: list[str], name: str) -> dict[str, str]:
    """The attributes of the ``Set-Cookie`` of ``name``, lower-cased (``value`` holds its value)."""
    (line,) = [c for c in set_cookie if c.startswith(f"{name}=")]
    first, *attrs = [p.strip() for p in line.split(";")]
    flags = {"value": first.partition("=")[2]}
    for attr in attrs:
        key, _, value = attr.partition("=")
        flags[key.lower()] = value.lower()
    return flags


def test_login_sets_an_httponly_strict_cookie_and_hands_out_the_csrf_token(
    api: tuple[TestClient, NodeContext],
) -> None:
    c, ctx = api
    new_user(ctx.access, Role.OPERATOR, "alice")
    answer = c.post("/api/v1/auth/login", json={"user": "alice", "password": PASSWORD})
    assert answer.status_code == 200
    body = answer.json()
    assert body["user"] == "alice"
    assert body["role"] == "operator"
    cookies = answer.headers.get_list("set-cookie")
    session = cookie_flags(cookies, "lf_session")
    assert "httponly" in session
    assert session["samesite"] == "strict"
    assert session["path"] == "/"
    assert int(session["max-age"]) == int(ctx.config.http.session_lifetime)
    assert "secure" not in session  # plain HTTP: a Secure cookie would never come back
    csrf = cookie_flags(cookies, "lf_csrf")
    assert "httponly" not in csrf  # the console's script reads it
    assert csrf["samesite"] == "strict"
    assert csrf["value"] == body["csrf_token"]
    assert session["value"] not in answer.text  # the session id only in its HttpOnly cookie
    me = c.get("/api/v1/auth/me", headers={"Cookie": f"lf_session={session['value']}"})
    assert me.json() == {"name": "alice", "role": "operator", "kind": "session", "scopes": []}


def test_over_https_both_cookies_are_secure(api: tuple[TestClient, NodeContext]) -> None:
    _c, ctx = api
    new_user(ctx.access, Role.VIEWER, "alice")
    with TestClient(create_app(ctx), base_url="https://127.0.0.1") as https:
        answer = https.post("/api/v1/auth/login", json={"user": "alice", "password": PASSWORD})
    assert answer.status_code == 200
    cookies = answer.headers.get_list("set-cookie")
    for name in ("lf_session", "lf_csrf"):
        flags = cookie_flags(cookies, name)
        assert "secure" in flags, name
        assert flags["samesite"] == "strict"


def test_a_cookie_write_needs_the_session_s_csrf_token(api: tuple[TestClient, NodeContext]) -> None:
    c, ctx = api
    new_user(ctx.access, Role.ADMIN, "alice")
    sid, csrf = login(c, "alice")
    other_sid, other_csrf = login(c, "alice")  # another session's token is not this one's
    body = {"name": "from the console", "role": "viewer"}
    cookie = {"Cookie": f"lf_session={sid}"}
    for what, extra in (
        ("no token", {}),
        ("empty token", {"X-CSRF-Token": ""}),
        ("wrong token", {"X-CSRF-Token": "x" * 43}),
        ("another session's token", {"X-CSRF-Token": other_csrf}),
        ("the token with a space", {"X-CSRF-Token": csrf + " "}),
    ):
        answer = c.post("/api/v1/tokens", json=body, headers={**cookie, **extra})
        assert answer.status_code == 403, what
        assert "X-CSRF-Token" in answer.json()["error"], what
        assert ctx.access.tokens() == [], what
    # also on DELETE and PATCH, and with the token in a cookie only (what a forged form sends)
    new_user(ctx.access, Role.VIEWER, "bob")
    for method in ("PATCH", "DELETE"):
        answer = c.request(
            method,
            "/api/v1/users/bob",
            json={"disabled": True} if method == "PATCH" else None,
            headers={"Cookie": f"lf_session={sid}; lf_csrf={csrf}"},
        )
        assert answer.status_code == 403, method
    bob = ctx.access.user("bob")
    assert bob is not None
    assert not bob.disabled
    answer = c.post("/api/v1/tokens", json=body, headers=session_headers((sid, csrf), write=True))
    assert answer.status_code == 201
    assert [t.name for t in ctx.access.tokens()] == ["from the console"]
    # reads need no CSRF token
    assert c.get("/api/v1/tokens", headers=cookie).status_code == 200
    assert other_sid != sid


def test_a_browser_session_works_from_the_cookie_jar(api: tuple[TestClient, NodeContext]) -> None:
    """As a browser does it: the cookies come back by themselves; the script adds the header."""
    c, ctx = api
    new_user(ctx.access, Role.ADMIN, "alice")
    answer = c.post("/api/v1/auth/login", json={"user": "alice", "password": PASSWORD})
    csrf = answer.json()["csrf_token"]
    assert c.get("/api/v1/auth/me").json()["kind"] == "session"
    assert c.post("/api/v1/tokens", json={"name": "x", "role": "viewer"}).status_code == 403
    created = c.post(
        "/api/v1/tokens", json={"name": "x", "role": "viewer"}, headers={"X-CSRF-Token": csrf}
    )
    assert created.status_code == 201
    out = c.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf})
    assert out.json() == {"logged_out": True}
    assert c.get("/api/v1/auth/me").status_code == 401


def test_logout_ends_the_session_and_clears_the_cookies(
    api: tuple[TestClient, NodeContext],
) -> None:
    c, ctx = api
    new_user(ctx.access, Role.VIEWER, "alice")
    session = login(c, "alice")
    kept = login(c, "alice")  # another login of the same user lives on
    assert c.get("/api/v1/auth/me", headers=session_headers(session)).status_code == 200
    assert c.post("/api/v1/auth/logout", headers=session_headers(session)).status_code == 403
    out = c.post("/api/v1/auth/logout", headers=session_headers(session, write=True))
    assert out.status_code == 200
    assert out.json() == {"logged_out": True}
    for name in ("lf_session", "lf_csrf"):
        assert cookie_flags(out.headers.get_list("set-cookie"), name)["max-age"] == "0"
    c.cookies.clear()
    gone = c.get("/api/v1/auth/me", headers=session_headers(session))
    assert gone.status_code == 401
    assert "session has ended" in gone.json()["error"]
    assert c.get("/api/v1/auth/me", headers=session_headers(kept)).status_code == 200


def test_a_password_change_ends_every_session_of_the_user(
    api: tuple[TestClient, NodeContext],
) -> None:
    c, ctx = api
    new_user(ctx.access, Role.VIEWER, "alice")
    new_user(ctx.access, Role.VIEWER, "bob")
    first, second, bobs = login(c, "alice"), login(c, "alice"), login(c, "bob")
    new_password = "an even better passphrase"
    url = "/api/v1/auth/password"
    wrong = c.post(
        url,
        json={"current": "not my password", "new": new_password},
        headers=session_headers(first, write=True),
    )
    assert wrong.status_code == 403
    short = c.post(
        url, json={"current": PASSWORD, "new": "short"}, headers=session_headers(first, write=True)
    )
    assert short.status_code == 400
    assert "at least 12" in short.json()["error"]
    assert c.get("/api/v1/auth/me", headers=session_headers(second)).status_code == 200
    # a token is not a login: it has no password of its own to change
    by_token = c.post(
        url, json={"current": PASSWORD, "new": new_password}, headers=bearer(ctx, Role.ADMIN)
    )
    assert by_token.status_code == 403
    changed = c.post(
        url,
        json={"current": PASSWORD, "new": new_password},
        headers=session_headers(first, write=True),
    )
    assert changed.status_code == 200
    assert changed.json() == {"changed": True, "logged_out": True}
    for name in ("lf_session", "lf_csrf"):
        assert cookie_flags(changed.headers.get_list("set-cookie"), name)["max-age"] == "0"
    for session in (first, second):
        assert c.get("/api/v1/auth/me", headers=session_headers(session)).status_code == 401
    assert c.get("/api/v1/auth/me", headers=session_headers(bobs)).status_code == 200
    old = c.post("/api/v1/auth/login", json={"user": "alice", "password": PASSWORD})
    assert old.status_code == 401
    assert login(c, "alice", new_password)


def test_a_disabled_or_removed_user_s_session_is_refused(
    api: tuple[TestClient, NodeContext],
) -> None:
    c, ctx = api
    admin = bearer(ctx, Role.ADMIN)
    new_user(ctx.access, Role.OPERATOR, "alice")
    new_user(ctx.access, Role.OPERATOR, "bob")
    alice, bob = login(c, "alice"), login(c, "bob")
    assert c.patch("/api/v1/users/alice", json={"disabled": True}, headers=admin).status_code == 200
    assert c.get("/api/v1/auth/me", headers=session_headers(alice)).status_code == 401
    refused = c.post("/api/v1/auth/login", json={"user": "alice", "password": PASSWORD})
    assert refused.status_code == 401
    assert c.delete("/api/v1/users/bob", headers=admin).status_code == 200
    assert c.get("/api/v1/auth/me", headers=session_headers(bob)).status_code == 401
    # a role change ends the session too: the next login carries the new role
    new_user(ctx.access, Role.OPERATOR, "carol")
    carol = login(c, "carol")
    assert c.patch("/api/v1/users/carol", json={"role": "viewer"}, headers=admin).status_code == 200
    assert c.get("/api/v1/auth/me", headers=session_headers(carol)).status_code == 401
    assert c.get("/api/v1/auth/me", headers=session_headers(login(c, "carol"))).json()["role"] == (
        "viewer"
    )


def test_a_wrong_login_says_nothing_about_which_part_was_wrong(
    api: tuple[TestClient, NodeContext],
) -> None:
    c, ctx = api
    new_user(ctx.access, Role.VIEWER, "alice")
    unknown = c.post("/api/v1/auth/login", json={"user": "mallory", "password": PASSWORD})
    wrong = c.post("/api/v1/auth/login", json={"user": "alice", "password": "not the password"})
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()
    assert "set-cookie" not in unknown.headers
    assert "set-cookie" not in wrong.headers


def test_a_bearer_token_wins_over_a_cookie(api: tuple[TestClient, NodeContext]) -> None:
    """A request with both is the token's (and so needs no CSRF token), never the session's."""
    c, ctx = api
    new_user(ctx.access, Role.ADMIN, "alice")
    session = login(c, "alice")
    headers = {**bearer(ctx, Role.VIEWER), **session_headers(session)}
    me = c.get("/api/v1/auth/me", headers=headers).json()
    assert (me["kind"], me["role"]) == ("token", "viewer")
    assert c.get("/api/v1/users", headers=headers).status_code == 403


@pytest.fixture
def unlocked(tmp_path: Path, local_bus: LocalBus) -> Iterator[tuple[TestClient, NodeContext]]:
    """The API with the login lock-out out of reach (a flood from one address stays checked)."""
    config = parse_config("http: {login_max_failures: 1000000}\n", "flood.yaml")
    c, ctx = make_client(tmp_path, local_bus, config, role=None)
    with c:
        yield c, ctx
    ctx.producer.close()


def test_a_flood_of_logins_beyond_the_bound_gets_503_and_the_rest_are_checked(
    unlocked: tuple[TestClient, NodeContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Password checks wait for Argon2 in worker threads: at most MAX_PASSWORD_CHECKS at once,
    so a flood cannot hold every thread of the server (ingest and reads need them too)."""
    c, ctx = unlocked
    release = threading.Event()
    entered: list[str] = []

    def held_check(name: str, password: str) -> None:
        entered.append(name)
        release.wait(30)

    monkeypatch.setattr(ctx.access, "verify_password", held_check)
    answers: list[int] = []
    extra = 3

    def attempt(i: int) -> None:
        body = {"user": f"user{i}", "password": PASSWORD}
        answers.append(c.post("/api/v1/auth/login", json=body).status_code)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(MAX_PASSWORD_CHECKS)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(entered) == MAX_PASSWORD_CHECKS, 20, "the checks to start")
        for i in range(extra):
            attempt(MAX_PASSWORD_CHECKS + i)
        assert answers == [503] * extra
        busy = c.post("/api/v1/auth/login", json={"user": "x", "password": PASSWORD})
        assert busy.status_code == 503
        assert busy.headers["Retry-After"] == "1"
        # other work goes on meanwhile
        assert c.get("/api/v1/health").status_code in (200, 503)
        assert c.get("/api/v1/auth/me", headers=bearer(ctx, Role.VIEWER)).status_code == 200
    finally:
        release.set()
        for t in threads:
            t.join(30)
    assert sorted(answers) == [401] * MAX_PASSWORD_CHECKS + [503] * extra
    assert ctx.registry.snapshot()["counters"]["api"]["limited_login_busy"] == extra + 1
    # and the next login is checked again
    assert c.post("/api/v1/auth/login", json={"user": "x", "password": PASSWORD}).status_code == 401


def test_guessing_the_current_password_meets_the_login_lock_out(
    tmp_path: Path, local_bus: LocalBus
) -> None:
    """A stolen session cannot try current passwords without limit: wrong ones count as
    failed logins of that user, and the lock-out answers 429 before any is checked."""
    c, ctx = make_client(tmp_path, local_bus, Config(), role=None)
    with c:
        new_user(ctx.access, Role.VIEWER, "alice")
        headers = session_headers(login(c, "alice"), write=True)
        guess = {"current": "not her password", "new": "a brand new passphrase"}
        statuses = [
            c.post("/api/v1/auth/password", json=guess, headers=headers).status_code
            for _ in range(6)
        ]
        assert statuses == [403] * 5 + [429]
        refused = c.post("/api/v1/auth/login", json={"user": "alice", "password": PASSWORD})
        assert refused.status_code == 429  # her name is locked for logins too
    ctx.producer.close()


def test_the_tarpit_holds_at_most_its_bound_and_lets_the_rest_through() -> None:
    """Held refusals are sleeping coroutines, at most ``most`` at once: one more is answered
    at once (the pit cannot grow with a flood), and a hold ends by itself."""

    async def scenario() -> tuple[int, int, int]:
        pit = Tarpit(hold_s=3600.0, most=3)
        held = [asyncio.create_task(pit.hold(3600.0)) for _ in range(3)]
        while pit.held < 3:
            await asyncio.sleep(0)
        at_bound = pit.held
        await asyncio.wait_for(pit.hold(3600.0), 30)  # over the bound: not held
        beyond_held = pit.held  # still the bound: the one beyond was never counted in
        for task in held:
            task.cancel()
        await asyncio.gather(*held, return_exceptions=True)
        short = Tarpit(hold_s=0.0, most=3)
        await asyncio.wait_for(short.hold(60.0), 30)  # held for min(wait, hold_s)
        return at_bound, beyond_held, pit.held

    at_bound, beyond_held, after = asyncio.run(scenario())
    assert at_bound == 3
    assert beyond_held == 3
    assert after == 0  # cancelled holds are released
