"""Hostile input to the access routes: whatever a client sends to login, users, tokens or the
password change, and whatever it puts in its credentials, gets a clear 4xx; never a 500, never
a traceback in the log, nothing changed."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.helpers.access import PASSWORD, login, new_user, open_session, session_headers
from tests.helpers.clients import TestClient, make_client

from logfactory.access import Role
from logfactory.api import NodeContext
from logfactory.api.json_body import MAX_JSON_BYTES
from logfactory.bus.local import LocalBus
from logfactory.config import parse_config


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, NodeContext]]:
    """One API for the module (Hypothesis runs many examples on it): users ``root`` (admin)
    and ``alice`` (viewer), both with the password PASSWORD; no credential by default. The
    login lock-out is set out of reach: these tests feed the route hostile bodies, which must
    each get their own answer (the lock-out has tests of its own, test_lockout, test_api_limits)."""
    tmp = tmp_path_factory.mktemp("hostile")
    bus = LocalBus(tmp / "bus")
    config = parse_config("http: {login_max_failures: 1000000000}\n", "hostile.yaml")
    c, ctx = make_client(tmp, bus, config, role=None)
    new_user(ctx.access, Role.ADMIN, "root")
    new_user(ctx.access, Role.VIEWER, "alice")
    with c:
        yield c, ctx
    ctx.producer.close()
    bus.close()


@pytest.fixture
def admin(api: tuple[TestClient, NodeContext]) -> dict[str, str]:
    """A session of ``root``, with its CSRF token (what the console sends on a write)."""
    return session_headers(open_session(api[1].access, "root"), write=True)


@pytest.fixture(autouse=True)
def no_errors_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test here: nothing logged at ERROR or above, no traceback."""
    with caplog.at_level(logging.WARNING):
        yield
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [r.getMessage() for r in bad]
    assert "Traceback" not in caplog.text


def state(ctx: NodeContext) -> tuple[Any, ...]:
    return (
        [u.as_json() for u in ctx.access.users()],
        [t.as_json() for t in ctx.access.tokens()],
    )


#: every access route that reads a JSON body: (method, path)
JSON_ROUTES = [
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/password"),
    ("POST", "/api/v1/users"),
    ("PATCH", "/api/v1/users/alice"),
    ("POST", "/api/v1/tokens"),
    ("PATCH", "/api/v1/tokens/000000000000"),
]

DEEP = b"[" * 100_000 + b"]" * 100_000
HOSTILE_BODIES: list[tuple[str, bytes, str, int]] = [
    ("10 MB", b'{"user": "' + b"a" * 10_000_000 + b'"}', "application/json", 413),
    ("just over the bound", b" " * (MAX_JSON_BYTES + 1), "application/json", 413),
    ("form post", b"user=root&password=x", "application/x-www-form-urlencoded", 415),
    ("text/plain", b'{"user": "root", "password": "x"}', "text/plain", 415),
    ("no type", b'{"user": "root", "password": "x"}', "", 415),
    ("not JSON", b"user=root", "application/json", 400),
    ("empty", b"", "application/json", 400),
    ("truncated", b'{"user": "ro', "application/json", 400),
    ("a list", b"[]", "application/json", 400),
    ("a string", b'"root"', "application/json", 400),
    ("null", b"null", "application/json", 400),
    ("deep nesting", DEEP, "application/json", 413),
    (
        "deep nesting, small",
        b'{"user": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        "application/json",
        400,
    ),
    ("unknown field", b'{"user": "root", "password": "x", "admin": true}', "application/json", 400),
    (
        "wrong types",
        b'{"user": 1, "password": ["x"], "name": {}, "role": 3}',
        "application/json",
        400,
    ),
    ("invalid UTF-8", b'{"user": "\xff\xfe", "password": "x"}', "application/json", 400),
    ("lone surrogate", b'{"user": "\\ud800", "password": "x"}', "application/json", 400),
]


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES, ids=[p for _, p in JSON_ROUTES])
@pytest.mark.parametrize(
    ("what", "body", "content_type", "status"),
    HOSTILE_BODIES,
    ids=[h[0] for h in HOSTILE_BODIES],
)
def test_hostile_bodies_get_a_clear_4xx_and_change_nothing(
    api: tuple[TestClient, NodeContext],
    admin: dict[str, str],
    method: str,
    path: str,
    what: str,
    body: bytes,
    content_type: str,
    status: int,
) -> None:
    c, ctx = api
    before = state(ctx)
    headers = {**admin, "Content-Type": content_type} if content_type else dict(admin)
    if not content_type:
        headers["Content-Type"] = ""
    answer = c.request(method, path, content=body, headers=headers)
    c.cookies.clear()
    assert 400 <= answer.status_code < 500, (what, answer.status_code)
    # the lone surrogate decodes for some routes and is refused by a rule instead: any 4xx
    if what != "lone surrogate":
        assert answer.status_code == status, (what, answer.text[:300])
    error = answer.json()["error"]
    assert isinstance(error, str)
    assert error
    assert len(answer.content) < 2000  # the answer does not echo a huge body back
    assert state(ctx) == before


@pytest.mark.parametrize(
    ("user", "password"),
    [
        ("root\x00", PASSWORD),
        ("ro\x00ot", PASSWORD),
        ("root", PASSWORD + "\x00"),
        ("root", "p" * 60_000),
        ("r" * 60_000, PASSWORD),
        ("\u202eroot", PASSWORD),
        ("root\n", PASSWORD),
        ("ROOT", PASSWORD),
        ("", ""),
    ],
    ids=[
        "nul-end",
        "nul-mid",
        "nul-password",
        "60k-password",
        "60k-name",
        "bidi",
        "newline",
        "case",
        "empty",
    ],
)
def test_odd_logins_are_a_plain_401(
    api: tuple[TestClient, NodeContext], user: str, password: str
) -> None:
    c, ctx = api
    answer = c.post("/api/v1/auth/login", json={"user": user, "password": password})
    assert answer.status_code == 401
    assert answer.json() == {"error": "wrong user name or password"}
    assert "set-cookie" not in answer.headers
    # the failed login is audited; a name no user can have only escaped, in the details
    last = ctx.access.audit_trail(action="login_failed", limit=1)[0]
    assert last.actor == (f"user:{user}" if user in ("root", "ROOT") else "user:?")
    if last.actor == "user:?":
        assert last.detail["name"] == ascii(user[:64])
        assert last.detail["name"].isprintable()
        assert last.detail["name"].isascii()
    if password:
        assert password not in str(last.as_json())


def test_huge_and_numerous_cookies_are_a_401(api: tuple[TestClient, NodeContext]) -> None:
    c, ctx = api
    me = "/api/v1/auth/me"
    big = c.get(me, headers={"Cookie": "lf_session=" + "a" * 10_000})
    assert big.status_code == 401
    many = "; ".join(f"c{i}=v{i}" for i in range(1000))
    assert c.get(me, headers={"Cookie": many}).status_code == 401
    assert c.get(me, headers={"Cookie": many + "; lf_session=nope"}).status_code == 401
    assert c.get(me, headers={"Cookie": "; ".join(["lf_session=x"] * 1000)}).status_code == 401
    assert c.get(me, headers={"Cookie": "lf_session=\x7f\x01; ;;=;=="}).status_code == 401
    # a real session among 1000 other cookies still works (the browser sends them all)
    sid, _ = login(c, "alice")
    answer = c.get(me, headers={"Cookie": f"{many}; lf_session={sid}"})
    assert answer.status_code == 200
    assert answer.json()["name"] == "alice"
    # a 10 KB CSRF header on a write is a 403, not a crash
    sid, _ = open_session(ctx.access, "root")
    answer = c.post(
        "/api/v1/tokens",
        json={"name": "x", "role": "viewer"},
        headers={"Cookie": f"lf_session={sid}", "X-CSRF-Token": "c" * 10_000},
    )
    assert answer.status_code == 403


# -- Hypothesis: any JSON to login, any credential header --------------------------------------
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=80),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        JSON,
        st.fixed_dictionaries({"user": JSON, "password": JSON}),
        st.fixed_dictionaries({"user": st.text(max_size=70), "password": st.text(max_size=70)}),
    )
)
def test_any_json_to_login_is_a_4xx(api: tuple[TestClient, NodeContext], body: Any) -> None:
    c, _ctx = api
    content = json.dumps(body).encode()
    answer = c.post(
        "/api/v1/auth/login", content=content, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code in (400, 401), answer.text
    assert "set-cookie" not in answer.headers


HEADER_TEXT = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=300
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(authorization=HEADER_TEXT, cookie=HEADER_TEXT, csrf=HEADER_TEXT)
def test_any_credential_headers_are_a_401_or_403(
    api: tuple[TestClient, NodeContext], authorization: str, cookie: str, csrf: str
) -> None:
    c, _ctx = api
    # as bytes: a client may send any Latin-1 octets, which httpx would not encode from str
    headers = {
        "Cookie": f"lf_session={cookie}".encode("latin-1"),
        "X-CSRF-Token": csrf.encode("latin-1"),
    }
    if authorization.strip():
        headers["Authorization"] = authorization.encode("latin-1")
    for method in ("GET", "POST"):
        answer = c.request(method, "/api/v1/users", headers=headers, json={})
        assert answer.status_code == 401, (method, answer.text)
        assert answer.json()["error"]


def test_a_review_that_is_not_utf8_is_a_400(
    api: tuple[TestClient, NodeContext], admin: dict[str, str]
) -> None:
    """The review route reads its body itself (not through read_json): bytes that are not
    UTF-8 are a 400 naming it, not a 500."""
    c, _ = api
    answer = c.post(
        "/api/v1/patterns/0123456789abcdef/review",
        content=b'{"status": "alert", "reason": "\xff\xfe"}',
        headers={**admin, "Content-Type": "application/json"},
    )
    assert answer.status_code == 400, answer.text
    assert "UTF-8" in answer.json()["error"]
