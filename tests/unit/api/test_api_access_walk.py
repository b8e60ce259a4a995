"""The route walk: every route of the app, found by walking it (and every operation of
``/openapi.json``, which the walk must cover), refuses a request without a credential (401), and
one of each role below the route's own (403), with nothing done; the route's role gets through.

A route's role is read from the app itself (:func:`logfactory.api.auth.required_role` on its
dependencies), not from a list here, so a new route behind the wrong role, or behind none,
fails this file. Only the short :data:`PUBLIC` list may answer without a credential. Each route
needs a sample request in :data:`SAMPLES` (a new route fails until it has one): one that would
change something (produce lines, store a review, add a user) if it were allowed, so "nothing
happened" after a refusal means something; the test shows the world does change when the
route's own role sends it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import fastapi.routing
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Mount
from tests.helpers.access import PASSWORD, count_rows, new_user, open_session, session_headers
from tests.helpers.bus import read_all
from tests.helpers.clients import TestClient, make_client
from tests.helpers.store_data import positions, sample_docs

from logfactory.access import ROLES, Role, role_allows
from logfactory.api import NodeContext
from logfactory.api.auth import required_role
from logfactory.bus.local import LocalBus
from logfactory.config import parse_config
from logfactory.factory.patterns.library import PatternLibrary
from logfactory.factory.patterns.topic import save_changes
from logfactory.store.engines.embedded import EmbeddedWriter
from logfactory.store.open import store_path
from logfactory.topics import PATTERNS, RAW, ensure_topics

SOURCE_TOKEN = "edge-source-token-0123456789"
CONFIG = f"sources: [{{type: http, name: edge, token: {SOURCE_TOKEN}}}]\n"
MOUNT = "MOUNT"  # the "method" of a mounted app (the docs' static files)


@dataclass
class Walk:
    """The app under walk, its node, and the credentials the walk uses."""

    client: TestClient
    ctx: NodeContext
    bus: LocalBus
    users: dict[Role, str]  # a user of each role (password PASSWORD)
    tokens: dict[Role, str]  # an API token of each role
    pattern_id: str
    stored_id: str  # a record in the store
    serial: int = 0

    def fresh(self, what: str) -> str:
        self.serial += 1
        return f"walk-{what}-{self.serial}"


@dataclass
class Sample:
    """A request to one route that its role may send."""

    path: str
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    ok: int = 200
    writes: bool = False  # the allowed request changes what world() sees
    session_only: bool = False  # the route acts for a login session only (a token gets 403)


Builder = Callable[[Walk], Sample]


def _review(w: Walk) -> Sample:
    body = {"status": "alert", "reason": "walked", "severity": "critical"}
    return Sample(f"/api/v1/patterns/{w.pattern_id}/review", json=body, writes=True)


def _password(w: Walk) -> Sample:
    body = {"current": PASSWORD, "new": PASSWORD + " again"}
    return Sample("/api/v1/auth/password", json=body, writes=True, session_only=True)


def _new_user(w: Walk) -> Sample:
    body = {"name": w.fresh("user"), "role": "viewer", "password": PASSWORD}
    return Sample("/api/v1/users", json=body, ok=201, writes=True)


def _target_user(w: Walk) -> str:
    return new_user(w.ctx.access, Role.VIEWER, w.fresh("target"))


def _target_token(w: Walk) -> str:
    _, info = w.ctx.access.create_token(w.fresh("target"), Role.VIEWER, "walk")
    return info.id


#: a request per route that needs a credential, keyed by (method, path as the app declares it)
SAMPLES: dict[tuple[str, str], Builder] = {
    ("GET", "/api/v1/stats"): lambda w: Sample("/api/v1/stats"),
    ("GET", "/metrics"): lambda w: Sample("/metrics"),
    ("POST", "/api/v1/ingest"): lambda w: Sample(
        "/api/v1/ingest",
        content=b"walked line\n",
        headers={"Content-Type": "text/plain"},
        writes=True,
    ),
    ("GET", "/api/v1/subscribe"): lambda w: Sample("/api/v1/subscribe?types=JOB_STATUS&idle=0.05"),
    ("GET", "/api/v1/topics/{topic}/tail"): lambda w: Sample(f"/api/v1/topics/{RAW}/tail"),
    ("GET", "/api/v1/patterns"): lambda w: Sample("/api/v1/patterns"),
    ("GET", "/api/v1/patterns/{pattern_id}"): lambda w: Sample(f"/api/v1/patterns/{w.pattern_id}"),
    ("POST", "/api/v1/patterns/{pattern_id}/review"): _review,
    ("POST", "/api/v1/auth/logout"): lambda w: Sample("/api/v1/auth/logout"),
    ("GET", "/api/v1/auth/me"): lambda w: Sample("/api/v1/auth/me"),
    ("POST", "/api/v1/auth/password"): _password,
    ("GET", "/api/v1/users"): lambda w: Sample("/api/v1/users"),
    ("POST", "/api/v1/users"): _new_user,
    ("PATCH", "/api/v1/users/{name}"): lambda w: Sample(
        f"/api/v1/users/{_target_user(w)}", json={"disabled": True}, writes=True
    ),
    ("DELETE", "/api/v1/users/{name}"): lambda w: Sample(
        f"/api/v1/users/{_target_user(w)}", writes=True
    ),
    ("GET", "/api/v1/tokens"): lambda w: Sample("/api/v1/tokens"),
    ("POST", "/api/v1/tokens"): lambda w: Sample(
        "/api/v1/tokens", json={"name": w.fresh("token"), "role": "viewer"}, ok=201, writes=True
    ),
    ("PATCH", "/api/v1/tokens/{token_id}"): lambda w: Sample(
        f"/api/v1/tokens/{_target_token(w)}", json={"expires_in": "0s"}, writes=True
    ),
    ("DELETE", "/api/v1/tokens/{token_id}"): lambda w: Sample(
        f"/api/v1/tokens/{_target_token(w)}", writes=True
    ),
    ("GET", "/api/v1/audit"): lambda w: Sample("/api/v1/audit"),
    ("GET", "/api/v1/search"): lambda w: Sample("/api/v1/search?q=walked"),
    ("GET", "/api/v1/aggregate"): lambda w: Sample("/api/v1/aggregate?op=top&field=host"),
    ("GET", "/api/v1/context"): lambda w: Sample(f"/api/v1/context?id={w.stored_id}"),
    # an export is audited: the one store route that changes what world() sees
    ("GET", "/api/v1/export"): lambda w: Sample("/api/v1/export?q=walked", writes=True),
    ("GET", "/openapi.json"): lambda w: Sample("/openapi.json"),
    ("GET", "/"): lambda w: Sample("/"),
    ("GET", "/docs"): lambda w: Sample("/docs"),
    ("GET", "/redoc"): lambda w: Sample("/redoc"),
}

VIEWER, OPERATOR, ADMIN, INGEST = Role.VIEWER, Role.OPERATOR, Role.ADMIN, Role.INGEST
#: the role each route must ask for, as the issue puts it (viewer: read, search, subscribe,
#: stats, metrics; operator: reviews; admin: users, tokens, the audit trail; ingest: post logs);
#: the walk reads the role from the app, this pins it, so a route that slips to a smaller role
#: fails here as well
POLICY: dict[tuple[str, str], Role] = {
    ("GET", "/api/v1/stats"): VIEWER,
    ("GET", "/metrics"): VIEWER,
    ("POST", "/api/v1/ingest"): INGEST,
    ("GET", "/api/v1/subscribe"): VIEWER,
    ("GET", "/api/v1/topics/{topic}/tail"): VIEWER,
    ("GET", "/api/v1/patterns"): VIEWER,
    ("GET", "/api/v1/patterns/{pattern_id}"): VIEWER,
    ("POST", "/api/v1/patterns/{pattern_id}/review"): OPERATOR,
    ("POST", "/api/v1/auth/logout"): VIEWER,
    ("GET", "/api/v1/auth/me"): VIEWER,
    ("POST", "/api/v1/auth/password"): VIEWER,
    ("GET", "/api/v1/users"): ADMIN,
    ("POST", "/api/v1/users"): ADMIN,
    ("PATCH", "/api/v1/users/{name}"): ADMIN,
    ("DELETE", "/api/v1/users/{name}"): ADMIN,
    ("GET", "/api/v1/tokens"): ADMIN,
    ("POST", "/api/v1/tokens"): ADMIN,
    ("PATCH", "/api/v1/tokens/{token_id}"): ADMIN,
    ("DELETE", "/api/v1/tokens/{token_id}"): ADMIN,
    ("GET", "/api/v1/audit"): ADMIN,
    ("GET", "/api/v1/search"): VIEWER,
    ("GET", "/api/v1/aggregate"): VIEWER,
    ("GET", "/api/v1/context"): VIEWER,
    ("GET", "/api/v1/export"): VIEWER,
    ("GET", "/openapi.json"): VIEWER,
    ("GET", "/"): VIEWER,
    ("GET", "/docs"): VIEWER,
    ("GET", "/redoc"): VIEWER,
}

#: the only routes served without a credential: health (what supervisors poll), the login form
#: and its script, the login itself, and the docs' static files (the same on every node)
PUBLIC: dict[tuple[str, str], Builder] = {
    ("GET", "/api/v1/health"): lambda w: Sample("/api/v1/health"),
    ("GET", "/login"): lambda w: Sample("/login"),
    ("GET", "/login.js"): lambda w: Sample("/login.js"),
    ("POST", "/api/v1/auth/login"): lambda w: Sample(
        "/api/v1/auth/login", json={"user": w.users[Role.OPERATOR], "password": PASSWORD}
    ),
    (MOUNT, "/docs/static"): lambda w: Sample("/docs/static/swagger-ui.css"),
}


def app_routes(app: FastAPI) -> Iterator[tuple[str, str, Any]]:
    """``(method, path, route)`` of every route the app serves (mounts as :data:`MOUNT`),
    through included routers as well."""
    walk = getattr(fastapi.routing, "iter_route_contexts", None)
    routes = [rc.original_route for rc in walk(app.routes)] if walk else list(app.routes)
    for route in routes:
        if isinstance(route, APIRoute):
            for method in sorted(route.methods or ()):
                yield method, route.path, route
        elif isinstance(route, Mount):
            yield MOUNT, route.path, route
        else:
            raise AssertionError(f"a route of a kind the walk does not know: {route!r}")


def role_of(route: Any) -> Role | None:
    """The role a route's dependencies ask for (searched through nested dependencies)."""
    if not isinstance(route, APIRoute):
        return None
    found: list[Role] = []
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        role = required_role(dep.call)
        if role is not None:
            found.append(role)
        stack.extend(dep.dependencies)
    assert len(set(found)) <= 1, f"{route.path} asks for several roles: {found}"
    return found[0] if found else None


def world(w: Walk) -> dict[str, Any]:
    """What any route could change: lines produced, reviews stored, users, tokens, sessions,
    and the audit trail (but for token_new_address: a refused request still used its token)."""
    store = w.ctx.access
    return {
        "raw": len(read_all(w.bus, RAW)),
        "library": len(read_all(w.bus, PATTERNS)),
        "users": [u.as_json() for u in store.users()],
        "tokens": [t.as_json() for t in store.tokens()],
        "sessions": count_rows(store.path, "sessions"),
        "audit": [
            e.as_json() for e in store.audit_trail(limit=10_000) if e.action != "token_new_address"
        ],
    }


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Walk]:
    tmp = tmp_path_factory.mktemp("walk")
    bus = LocalBus(tmp / "bus")
    config = parse_config(CONFIG + f"store: {{path: '{tmp / 'store'}'}}\n", "walk.yaml")
    stored = sample_docs(5)
    writer = EmbeddedWriter(store_path(config), max_age_s=86_400.0 * 365 * 100, max_size=0)
    writer.add(positions(stored))
    writer.close()
    ensure_topics(bus, config)
    library = PatternLibrary()
    pattern_id = library.observe("syslog", "session closed for user=alice", 1).pattern_id
    save_changes(bus, library)
    client, ctx = make_client(tmp, bus, config, role=None)
    users = {role: new_user(ctx.access, role, f"walk-{role}") for role in ROLES}
    tokens = {}
    for role in ROLES:
        token, _ = ctx.access.create_token(f"walk {role}", role, "walk")
        tokens[role] = token
    with client:
        yield Walk(client, ctx, bus, users, tokens, pattern_id, stored[0].id)
    ctx.producer.close()
    bus.close()


def send(w: Walk, method: str, sample: Sample, headers: dict[str, str]) -> Any:
    """``sample`` with ``headers``; the client keeps no cookie from the answer."""
    verb = "GET" if method == MOUNT else method
    answer = w.client.request(
        verb,
        sample.path,
        json=sample.json,
        content=sample.content,
        headers={**sample.headers, **headers},
    )
    w.client.cookies.clear()
    return answer


def credentials(w: Walk, role: Role, write: bool) -> dict[str, dict[str, str]]:
    """The headers of every way a caller of ``role`` can present itself: an API token, a login
    session (with its CSRF token on a write), and for ``ingest`` an http source's token."""
    session = open_session(w.ctx.access, w.users[role])
    out = {
        f"{role} token": {"Authorization": f"Bearer {w.tokens[role]}"},
        f"{role} session": session_headers(session, write=write),
    }
    if role is Role.INGEST:
        out["http source token"] = {"Authorization": f"Bearer {SOURCE_TOKEN}"}
    return out


def refused_credentials(w: Walk, write: bool) -> dict[str, dict[str, str]]:
    """The headers of credentials the node must not know: each must get 401 on every route."""
    store = w.ctx.access
    revoked, info = store.create_token(w.fresh("revoked"), Role.ADMIN, "walk")
    store.revoke_token(info.id)
    expired, _ = store.create_token(w.fresh("expired"), Role.ADMIN, "walk", expires=time.time() - 1)
    logged_out = open_session(store, w.users[Role.ADMIN])
    store.close_session(logged_out[0])
    unknown_id = "lf_000000000000_" + "A" * 43
    wrong_secret = w.tokens[Role.ADMIN][:-4] + "AAAA"
    return {
        "no credential": {},
        "revoked token": {"Authorization": f"Bearer {revoked}"},
        "expired token": {"Authorization": f"Bearer {expired}"},
        "unknown token id": {"Authorization": f"Bearer {unknown_id}"},
        "wrong secret": {"Authorization": f"Bearer {wrong_secret}"},
        "not a token": {"Authorization": "Bearer not-a-token"},
        "10 KB token": {"Authorization": "Bearer lf_" + "a" * 10_000},
        "empty bearer": {"Authorization": "Bearer "},
        "basic auth": {"Authorization": "Basic YWRtaW46YWRtaW4="},
        "logged-out session": session_headers(logged_out, write=write),
        "made-up session": session_headers(("x" * 43, "y" * 43), write=write),
    }


def test_every_route_is_walked_and_only_the_public_ones_need_no_role(walk: Walk) -> None:
    app = walk.client.app
    assert isinstance(app, FastAPI)
    found = {(method, path): role_of(route) for method, path, route in app_routes(app)}
    assert set(found) == set(SAMPLES) | set(PUBLIC), (
        "routes without a sample request here (add one to SAMPLES), or samples of routes "
        f"that are gone: {sorted(set(found) ^ (set(SAMPLES) | set(PUBLIC)))}"
    )
    no_role = {key for key, role in found.items() if role is None}
    assert no_role == set(PUBLIC), f"routes that ask for no role: {sorted(no_role)}"
    assert set(POLICY) == set(SAMPLES)
    wrong = {k: (found[k], POLICY[k]) for k in SAMPLES if found[k] is not POLICY[k]}
    assert not wrong, f"routes asking for another role than the policy's (found, policy): {wrong}"
    # everything the OpenAPI description lists is walked
    spec = walk.client.get(
        "/openapi.json", headers={"Authorization": f"Bearer {walk.tokens[Role.VIEWER]}"}
    ).json()
    described = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert described, "the OpenAPI description lists no operation"
    assert described <= set(found), sorted(described - set(found))
    # and says, for each route that needs a role, that it may answer 401 and 403
    undeclared = sorted(
        (m.upper(), p)
        for p, ops in spec["paths"].items()
        for m, op in ops.items()
        if found[(m.upper(), p)] is not None and not {"401", "403"} <= set(op["responses"])
    )
    assert not undeclared, f"routes whose description omits 401/403: {undeclared}"


@pytest.mark.parametrize("key", sorted(SAMPLES), ids=lambda k: f"{k[0]} {k[1]}")
def test_route_refuses_unknown_credentials_and_smaller_roles(
    walk: Walk, key: tuple[str, str]
) -> None:
    method, path = key
    app = walk.client.app
    assert isinstance(app, FastAPI)
    routes = {(m, p): r for m, p, r in app_routes(app)}
    need = role_of(routes[key])
    assert need is not None, f"{method} {path} needs no role"
    sample = SAMPLES[key](walk)
    write = method not in ("GET", "HEAD", "OPTIONS")
    refused = refused_credentials(walk, write)
    smaller = [r for r in ROLES if not role_allows(r, need)]
    assert smaller, f"{method} {path}: every role may call it ({need})"
    too_small = {k: v for r in smaller for k, v in credentials(walk, r, write).items()}
    allowed = credentials(walk, need, write)
    before = world(walk)

    for what, headers in refused.items():
        answer = send(walk, method, sample, headers)
        assert answer.status_code == 401, (what, answer.status_code, answer.text)
        assert answer.headers["WWW-Authenticate"] == "Bearer", what
        assert "Authorization: Bearer" in answer.json()["error"], answer.text  # says how
        assert world(walk) == before, f"{method} {path} did something for {what}"

    for what, headers in too_small.items():
        answer = send(walk, method, sample, headers)
        assert answer.status_code == 403, (what, answer.status_code, answer.text)
        assert f"needs the role {need}" in answer.json()["error"], answer.text
        assert world(walk) == before, f"{method} {path} did something for {what}"

    for what, headers in allowed.items():
        if sample.session_only and "session" not in what:
            continue
        answer = send(walk, method, sample, headers)
        assert answer.status_code == sample.ok, (what, answer.status_code, answer.text)
        if sample.writes:
            assert world(walk) != before, f"{method} {path} changed nothing for {what}"
            break  # the write is done; its sample (a target, a name) is used up
        # the credential's own kind is what the route saw
        if path == "/api/v1/auth/me":
            assert answer.json()["role"] == str(need)


@pytest.mark.parametrize("key", sorted(PUBLIC), ids=lambda k: f"{k[0]} {k[1]}")
def test_public_route_answers_without_a_credential(walk: Walk, key: tuple[str, str]) -> None:
    method, _path = key
    answer = send(walk, method, PUBLIC[key](walk), {})
    assert answer.status_code == 200, answer.text


def test_a_route_refuses_a_cookie_write_without_the_csrf_token_before_anything_happens(
    walk: Walk,
) -> None:
    """A role that would be allowed, by session, without the CSRF token: 403 and no change."""
    before = world(walk)
    session = open_session(walk.ctx.access, walk.users[Role.ADMIN])
    sample = _new_user(walk)
    answer = send(walk, "POST", sample, session_headers(session, write=False))
    assert answer.status_code == 403
    assert "CSRF" in answer.json()["error"]
    assert world(walk)["users"] == before["users"]


def test_the_walk_sees_every_role_of_the_ladder(walk: Walk) -> None:
    """The walk is only as good as the roles it finds: every role is required somewhere."""
    app = walk.client.app
    assert isinstance(app, FastAPI)
    roles = {role_of(route) for _m, _p, route in app_routes(app)}
    assert roles - {None} == set(ROLES)
