"""Users and tokens over the API: the last admin stays, bad input gets a 400 that says what is
wrong, and a token's scopes limit what it may subscribe to and read; the factory's internal
topics are served to nobody."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.access import PASSWORD, login, new_user, session_headers
from tests.helpers.clients import TestClient, bearer, make_client

from logfactory.access import Role
from logfactory.api import NodeContext
from logfactory.bus.local import LocalBus
from logfactory.config import Config
from logfactory.event import Event, Header, encode_event, format_time, topic_for_type
from logfactory.topics import PATTERNS, STATE, ensure_topics


@pytest.fixture
def api(tmp_path: Path, local_bus: LocalBus) -> Iterator[tuple[TestClient, NodeContext]]:
    """The API with an admin token in every request, and the node's topics made."""
    ensure_topics(local_bus, Config())
    c, ctx = make_client(tmp_path, local_bus, Config())
    with c:
        yield c, ctx
    ctx.producer.close()


# -- the last admin ------------------------------------------------------------------------------
def test_the_last_active_admin_cannot_be_removed_disabled_demoted_or_given_an_end(
    api: tuple[TestClient, NodeContext],
) -> None:
    c, ctx = api
    new_user(ctx.access, Role.ADMIN, "root")
    new_user(ctx.access, Role.ADMIN, "retired")
    ctx.access.change_user("retired", disabled=True)  # an admin who cannot log in does not count
    for change in ({"role": "operator"}, {"disabled": True}, {"expires_in": "30d"}):
        answer = c.patch("/api/v1/users/root", json=change)
        assert answer.status_code == 409, change
        assert "last active admin" in answer.json()["error"]
    answer = c.delete("/api/v1/users/root")
    assert answer.status_code == 409
    root = ctx.access.user("root")
    assert root is not None
    assert root.active(0)
    assert root.role is Role.ADMIN
    # what leaves them an admin is fine
    for change in (
        {"password": "a new admin passphrase"},
        {"never_expires": True},
        {"role": "admin"},
    ):
        assert c.patch("/api/v1/users/root", json=change).status_code == 200, change
    # with a second active admin, the first may go
    new_user(ctx.access, Role.ADMIN, "second")
    assert c.patch("/api/v1/users/root", json={"role": "viewer"}).status_code == 200
    assert c.delete("/api/v1/users/second").status_code == 409  # now the last one
    # other users are no admin: nothing to keep
    new_user(ctx.access, Role.VIEWER, "alice")
    assert c.delete("/api/v1/users/alice").status_code == 200


def test_two_admins_demoting_each_other_at_once_leave_one(
    api: tuple[TestClient, NodeContext],
) -> None:
    """The last-admin check and the change are one step: two requests at once cannot both
    pass the check and leave no admin."""
    c, ctx = api
    for _ in range(5):
        for name in ("a1", "a2"):
            if ctx.access.user(name) is None:
                new_user(ctx.access, Role.ADMIN, name)
            ctx.access.change_user(name, role=Role.ADMIN, disabled=False)
        answers: list[int] = []
        barrier = threading.Barrier(2)
        threads = [
            threading.Thread(target=_demote, args=(c, n, barrier, answers)) for n in ("a1", "a2")
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(answers) == [200, 409]
        active = [u.name for u in ctx.access.users() if u.role is Role.ADMIN and not u.disabled]
        assert len(active) == 1


def _demote(c: TestClient, name: str, barrier: threading.Barrier, answers: list[int]) -> None:
    barrier.wait()
    answers.append(c.patch(f"/api/v1/users/{name}", json={"disabled": True}).status_code)


# -- bad input: a clear 400 ----------------------------------------------------------------------
BAD_USERS: list[tuple[dict[str, Any], str]] = [
    ({"name": "", "role": "viewer", "password": PASSWORD}, "user name is 1-64"),
    ({"name": "a b", "role": "viewer", "password": PASSWORD}, "user name is 1-64"),
    ({"name": "x" * 65, "role": "viewer", "password": PASSWORD}, "user name is 1-64"),
    ({"name": "alice\n", "role": "viewer", "password": PASSWORD}, "user name is 1-64"),
    ({"name": "al\x00ice", "role": "viewer", "password": PASSWORD}, "user name is 1-64"),
    ({"name": "\u00e4lice", "role": "viewer", "password": PASSWORD}, "user name is 1-64"),
    ({"name": "alice", "role": "viewer", "password": "short"}, "at least 12"),
    ({"name": "alice", "role": "viewer", "password": "p" * 1025}, "at most 1024"),
    ({"name": "alice", "role": "root", "password": PASSWORD}, "$.role"),
    ({"name": "alice", "role": "viewer"}, "password"),
    ({"name": "alice", "role": "viewer", "password": PASSWORD, "admin": True}, "admin"),
    ({"name": "alice", "role": "viewer", "password": PASSWORD, "expires_in": "soon"}, "soon"),
    ({"name": "alice", "role": "viewer", "password": PASSWORD, "expires_in": -5}, "more than 0"),
    ({"name": "alice", "role": "viewer", "password": PASSWORD, "expires_in": 0}, "more than 0"),
    ({"name": "alice", "role": "viewer", "password": PASSWORD, "expires_in": True}, "expires_in"),
    ({"name": 7, "role": "viewer", "password": PASSWORD}, "$.name"),
]


@pytest.mark.parametrize(("body", "says"), BAD_USERS, ids=range(len(BAD_USERS)))
def test_a_bad_new_user_gets_a_400_that_says_why(
    api: tuple[TestClient, NodeContext], body: dict[str, Any], says: str
) -> None:
    c, ctx = api
    answer = c.post("/api/v1/users", json=body)
    assert answer.status_code == 400, answer.text
    assert says in answer.json()["error"]
    assert ctx.access.users() == []


def test_a_taken_user_name_is_409_and_changes_to_nobody_are_404(
    api: tuple[TestClient, NodeContext],
) -> None:
    c, _ctx = api
    body = {"name": "alice", "role": "viewer", "password": PASSWORD}
    created = c.post("/api/v1/users", json=body)
    assert created.status_code == 201
    assert "password" not in json.dumps(created.json())
    assert c.post("/api/v1/users", json=body).status_code == 409
    assert c.patch("/api/v1/users/nobody", json={"role": "viewer"}).status_code == 404
    assert c.delete("/api/v1/users/nobody").status_code == 404
    bad = [
        {"role": "root"},
        {"password": "short"},
        {"expires_in": "later"},
        {"extra": 1},
        {"expires_in": "1d", "never_expires": True},
    ]
    for change in bad:
        answer = c.patch("/api/v1/users/alice", json=change)
        assert answer.status_code == 400, change
    listed = c.get("/api/v1/users").json()
    assert [u["name"] for u in listed] == ["alice"]
    assert "hash" not in json.dumps(listed)


BAD_TOKENS: list[tuple[dict[str, Any], str]] = [
    ({"name": "", "role": "viewer"}, "1-100 printable"),
    ({"name": "x" * 101, "role": "viewer"}, "1-100 printable"),
    ({"name": "a\nb", "role": "viewer"}, "1-100 printable"),
    ({"name": "grafana\n", "role": "viewer"}, "1-100 printable"),
    ({"name": "a\x00", "role": "viewer"}, "1-100 printable"),
    ({"name": "g", "role": "superuser"}, "$.role"),
    ({"name": "g", "role": "viewer", "scopes": ["type:NOPE"]}, "not a scope"),
    ({"name": "g", "role": "viewer", "scopes": ["type:"]}, "not a scope"),
    ({"name": "g", "role": "viewer", "scopes": ["topic:"]}, "not a scope"),
    ({"name": "g", "role": "viewer", "scopes": ["topic:a b"]}, "not a scope"),
    ({"name": "g", "role": "viewer", "scopes": ["topic:logs.parsed\n"]}, "not a scope"),
    ({"name": "g", "role": "viewer", "scopes": ["JOB_STATUS"]}, "not a scope"),
    ({"name": "g", "role": "viewer", "scopes": ["type:JOB_STATUS"] * 101}, "at most 100"),
    ({"name": "g", "role": "viewer", "scopes": "type:JOB_STATUS"}, "$.scopes"),
    ({"name": "g", "role": "admin", "scopes": ["type:JOB_STATUS"]}, "admin token cannot be"),
    ({"name": "g", "role": "viewer", "expires_in": "tomorrow"}, "tomorrow"),
    ({"name": "g", "role": "viewer", "expires_in": -1}, "more than 0"),
    ({"name": "g", "role": "viewer", "expires_in": 0}, "more than 0"),
    ({"name": "g", "role": "viewer", "secret": "mine"}, "secret"),
]


@pytest.mark.parametrize(("body", "says"), BAD_TOKENS, ids=range(len(BAD_TOKENS)))
def test_a_bad_new_token_gets_a_400_that_says_why(
    api: tuple[TestClient, NodeContext], body: dict[str, Any], says: str
) -> None:
    c, ctx = api
    before = len(ctx.access.tokens())
    answer = c.post("/api/v1/tokens", json=body)
    assert answer.status_code == 400, answer.text
    assert says in answer.json()["error"]
    assert len(ctx.access.tokens()) == before


def test_token_expiry_changes_and_revocations(api: tuple[TestClient, NodeContext]) -> None:
    c, _ctx = api
    created = c.post("/api/v1/tokens", json={"name": "grafana", "role": "viewer"})
    assert created.status_code == 201
    token, token_id = created.json()["token"], created.json()["id"]
    mine = {"Authorization": f"Bearer {token}"}
    assert c.get("/api/v1/auth/me", headers=mine).status_code == 200
    for bad in ("soon", -1, "", "1y"):
        answer = c.patch(f"/api/v1/tokens/{token_id}", json={"expires_in": bad})
        assert answer.status_code == 400, bad
    assert c.patch("/api/v1/tokens/000000000000", json={"expires_in": "1d"}).status_code == 404
    assert c.patch(f"/api/v1/tokens/{token_id}", json={"expires_in": "1d"}).status_code == 200
    assert c.get("/api/v1/auth/me", headers=mine).status_code == 200
    ended = c.patch(f"/api/v1/tokens/{token_id}", json={"expires_in": "0s"})
    assert ended.status_code == 200
    assert c.get("/api/v1/auth/me", headers=mine).status_code == 401
    assert c.patch(f"/api/v1/tokens/{token_id}", json={"expires_in": "1d"}).status_code == 200
    assert c.get("/api/v1/auth/me", headers=mine).status_code == 200
    assert c.delete(f"/api/v1/tokens/{token_id}").status_code == 200
    assert c.get("/api/v1/auth/me", headers=mine).status_code == 401
    # revoked is for good: a later expiry does not bring it back
    assert c.patch(f"/api/v1/tokens/{token_id}", json={"expires_in": "1d"}).status_code == 200
    assert c.get("/api/v1/auth/me", headers=mine).status_code == 401
    assert c.delete("/api/v1/tokens/000000000000").status_code == 404
    listed = c.get("/api/v1/tokens").json()
    assert token not in json.dumps(listed)
    assert token.split("_", 2)[2] not in json.dumps(listed)


# -- scopes ------------------------------------------------------------------------------------
def put_event(ctx: NodeContext, event_type: str, event_id: str) -> None:
    producer = ctx.bus.producer()
    event = Event(
        header=Header(id=event_id, time=format_time(1_700_000_000_000_000_000), type=event_type)
    )
    producer.produce(topic_for_type(event_type), encode_event(event), b"h")
    producer.flush()
    producer.close()


def test_a_token_scoped_to_job_status_subscribes_to_that_only(
    api: tuple[TestClient, NodeContext],
) -> None:
    c, ctx = api
    put_event(ctx, "JOB_STATUS", "job-1")
    put_event(ctx, "ALERT", "alert-1")
    created = c.post(
        "/api/v1/tokens", json={"name": "jobs app", "role": "viewer", "scopes": ["type:JOB_STATUS"]}
    )
    assert created.status_code == 201
    assert created.json()["scopes"] == ["type:JOB_STATUS"]
    app = {"Authorization": f"Bearer {created.json()['token']}"}
    me = c.get("/api/v1/auth/me", headers=app).json()
    assert me["scopes"] == ["type:JOB_STATUS"]
    stream = c.get(
        "/api/v1/subscribe",
        params={"types": "JOB_STATUS", "from": "earliest", "limit": 1},
        headers=app,
    )
    assert stream.status_code == 200
    assert '"id":"job-1"' in stream.text
    for types in ("ALERT", "JOB_STATUS,ALERT"):
        refused = c.get(
            "/api/v1/subscribe", params={"types": types, "from": "earliest", "idle": 0.05},
            headers=app,
        )  # fmt: skip
        assert refused.status_code == 403, types
        assert "ALERT" in refused.json()["error"]
    assert c.get("/api/v1/topics/events.JOB_STATUS/tail", headers=app).status_code == 200
    for topic in ("events.ALERT", "logs.parsed", "logs.raw"):
        answer = c.get(f"/api/v1/topics/{topic}/tail", headers=app)
        assert answer.status_code == 403, topic
        assert "alert-1" not in answer.text
    # the same role without scopes reads everything
    free = bearer(ctx, Role.VIEWER)
    assert c.get("/api/v1/topics/events.ALERT/tail", headers=free).status_code == 200


def test_a_scoped_token_is_refused_on_every_route_that_reads_beyond_its_scopes(
    api: tuple[TestClient, NodeContext],
) -> None:
    """Stats, metrics, the pattern library (its entries hold example lines) and the docs do not
    check scopes, so a scoped token may not call them at all; subscribe, tail, ingest (its
    role permitting) and who-am-I it may."""
    c, ctx = api
    app = bearer(ctx, Role.VIEWER, ("type:JOB_STATUS",))
    for path in ("/api/v1/stats", "/metrics", "/api/v1/patterns", "/openapi.json", "/docs"):
        refused = c.get(path, headers=app)
        assert refused.status_code == 403, path
        assert "limited to type:JOB_STATUS" in refused.json()["error"], path
    assert c.get("/api/v1/auth/me", headers=app).status_code == 200
    assert c.get("/api/v1/topics/events.JOB_STATUS/tail", headers=app).status_code == 200
    unscoped = bearer(ctx, Role.VIEWER)
    assert c.get("/api/v1/patterns", headers=unscoped).status_code == 200


def test_a_token_scoped_to_a_topic_reads_that_topic_only(
    api: tuple[TestClient, NodeContext],
) -> None:
    c, ctx = api
    app = bearer(ctx, Role.VIEWER, ("topic:logs.parsed",))
    assert c.get("/api/v1/topics/logs.parsed/tail", headers=app).status_code == 200
    assert c.get("/api/v1/topics/logs.raw/tail", headers=app).status_code == 403
    refused = c.get("/api/v1/subscribe", params={"types": "ALERT", "idle": 0.05}, headers=app)
    assert refused.status_code == 403
    # a topic scope on an event topic covers subscribing to that type as well
    alerts = bearer(ctx, Role.VIEWER, ("topic:events.ALERT",))
    assert c.get("/api/v1/topics/events.ALERT/tail", headers=alerts).status_code == 200
    ok = c.get("/api/v1/subscribe", params={"types": "ALERT", "idle": 0.05}, headers=alerts)
    assert ok.status_code == 200
    no = c.get("/api/v1/subscribe", params={"types": "JOB_STATUS", "idle": 0.05}, headers=alerts)
    assert no.status_code == 403
    # and scopes of both kinds add up
    both = bearer(ctx, Role.VIEWER, ("type:JOB_STATUS", "topic:events.ALERT"))
    for topic in ("events.JOB_STATUS", "events.ALERT"):
        assert c.get(f"/api/v1/topics/{topic}/tail", headers=both).status_code == 200, topic
    assert c.get("/api/v1/topics/logs.parsed/tail", headers=both).status_code == 403
    for types in ("JOB_STATUS", "ALERT", "JOB_STATUS,ALERT"):
        ok = c.get("/api/v1/subscribe", params={"types": types, "idle": 0.05}, headers=both)
        assert ok.status_code == 200, types


@pytest.mark.parametrize("topic", [STATE, PATTERNS])
def test_internal_topics_are_served_to_nobody(
    api: tuple[TestClient, NodeContext], topic: str
) -> None:
    c, ctx = api
    assert topic in ctx.bus.topics()
    for headers in ({}, bearer(ctx, Role.ADMIN)):  # the client's admin token, and another
        answer = c.get(f"/api/v1/topics/{topic}/tail", headers=headers)
        assert answer.status_code == 404
        assert "is served here" in answer.json()["error"]
    new_user(ctx.access, Role.ADMIN, "root")
    session = login(c, "root")
    c.headers.pop("Authorization")
    answer = c.get(f"/api/v1/topics/{topic}/tail", headers=session_headers(session))
    assert answer.status_code == 404
