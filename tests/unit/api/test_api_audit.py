"""The audit trail over the API: every audited action leaves its line (who, what, on what, from
where, how it ended), no line holds a secret, and ``/api/v1/audit`` searches and pages it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.access import PASSWORD, login, new_user, session_headers
from tests.helpers.clients import TestClient, make_client

from logfactory.access import Role
from logfactory.api import NodeContext, create_app
from logfactory.bus.local import LocalBus
from logfactory.config import Config
from logfactory.factory.patterns.library import PatternLibrary
from logfactory.factory.patterns.topic import save_changes
from logfactory.topics import ensure_topics

HOME = "192.0.2.9"  # make_client's client address
AWAY = "198.51.100.7"


@pytest.fixture
def api(tmp_path: Path, local_bus: LocalBus) -> Iterator[tuple[TestClient, NodeContext]]:
    ensure_topics(local_bus, Config())
    c, ctx = make_client(tmp_path, local_bus, Config(), role=None)
    with c:
        yield c, ctx
    ctx.producer.close()


def trail(ctx: NodeContext, **filters: Any) -> list[dict[str, Any]]:
    return [e.as_json() for e in ctx.access.audit_trail(limit=1000, **filters)]


def one(ctx: NodeContext, action: str) -> dict[str, Any]:
    lines = trail(ctx, action=action)
    assert len(lines) == 1, (action, lines)
    return lines[0]


def test_every_audited_action_leaves_one_line_with_who_what_and_where(
    api: tuple[TestClient, NodeContext], local_bus: LocalBus
) -> None:
    c, ctx = api
    library = PatternLibrary()
    pattern_id = library.observe("syslog", "Disk /dev/sda1 FULL", 1).pattern_id
    save_changes(local_bus, library)
    new_user(ctx.access, Role.ADMIN, "root")
    secrets: list[str] = [PASSWORD]

    # logins: a failure, a success, a logout
    assert (
        c.post("/api/v1/auth/login", json={"user": "root", "password": "wrong!"}).status_code == 401
    )
    root = login(c, "root")
    write = session_headers(root, write=True)
    # users: created, changed, removed; a password changed
    created = c.post(
        "/api/v1/users",
        json={"name": "alice", "role": "viewer", "password": PASSWORD},
        headers=write,
    )
    assert created.status_code == 201
    assert (
        c.patch("/api/v1/users/alice", json={"role": "operator"}, headers=write).status_code == 200
    )
    assert c.delete("/api/v1/users/alice", headers=write).status_code == 200
    # tokens: created, expiry changed, revoked
    made = c.post("/api/v1/tokens", json={"name": "ops", "role": "operator"}, headers=write)
    assert made.status_code == 201
    token, token_id = made.json()["token"], made.json()["id"]
    secrets.append(token)
    as_token = {"Authorization": f"Bearer {token}"}
    # the token from two addresses, twice each: one new-address line per address
    away = TestClient(create_app(ctx), base_url="http://127.0.0.1", client=(AWAY, 1234))
    with away:
        for _ in range(2):
            assert c.get("/api/v1/auth/me", headers=as_token).status_code == 200
            assert away.get("/api/v1/auth/me", headers=as_token).status_code == 200
    # a review, by the token (an operator)
    review = {"status": "alert", "reason": "disk full", "severity": "critical"}
    reviewed = c.post(f"/api/v1/patterns/{pattern_id}/review", json=review, headers=as_token)
    assert reviewed.status_code == 200
    assert (
        c.patch(f"/api/v1/tokens/{token_id}", json={"expires_in": "7d"}, headers=write).status_code
        == 200
    )
    assert c.delete(f"/api/v1/tokens/{token_id}", headers=write).status_code == 200
    new_password = "root's new passphrase"
    secrets.append(new_password)
    changed = c.post(
        "/api/v1/auth/password", json={"current": PASSWORD, "new": new_password}, headers=write
    )
    assert changed.status_code == 200
    again = login(c, "root", new_password)
    assert (
        c.post("/api/v1/auth/logout", headers=session_headers(again, write=True)).status_code == 200
    )

    failed = one(ctx, "login_failed")
    assert (failed["actor"], failed["outcome"], failed["address"]) == ("user:root", "refused", HOME)
    logins = trail(ctx, action="login")
    assert [(e["actor"], e["address"]) for e in logins] == [("user:root", HOME)] * 2
    assert one(ctx, "logout")["actor"] == "user:root"
    for action, target in (
        ("user_created", "alice"),
        ("user_changed", "alice"),
        ("user_removed", "alice"),
        ("token_created", f"token:{token_id}"),
        ("token_expiry_changed", f"token:{token_id}"),
        ("token_revoked", f"token:{token_id}"),
        ("password_changed", "root"),
    ):
        line = one(ctx, action)
        assert (line["actor"], line["target"], line["address"], line["outcome"]) == (
            "user:root", target, HOME, "ok"
        ), action  # fmt: skip
    assert one(ctx, "user_created")["detail"]["role"] == "viewer"
    assert one(ctx, "user_changed")["detail"]["changed"] == ["role"]
    assert one(ctx, "token_created")["detail"]["role"] == "operator"
    line = one(ctx, "pattern_reviewed")
    assert (line["actor"], line["target"]) == (f"token:{token_id}", pattern_id)
    assert line["detail"] == review
    new_address = trail(ctx, action="token_new_address", actor=f"token:{token_id}")
    assert sorted(e["address"] for e in new_address) == sorted([HOME, AWAY])
    assert {e["target"] for e in new_address} == {"ops"}
    # no line holds a password or a token
    text = json.dumps(trail(ctx))
    for secret in secrets:
        assert secret not in text
        assert secret.split("_")[-1] not in text


def test_a_wrong_current_password_is_audited_as_refused(
    api: tuple[TestClient, NodeContext],
) -> None:
    c, ctx = api
    new_user(ctx.access, Role.VIEWER, "alice")
    session = login(c, "alice")
    answer = c.post(
        "/api/v1/auth/password",
        json={"current": "not the password", "new": "a long new password"},
        headers=session_headers(session, write=True),
    )
    assert answer.status_code == 403
    line = one(ctx, "password_changed")
    assert (line["actor"], line["outcome"]) == ("user:alice", "refused")
    assert "not the password" not in json.dumps(line)


def test_the_audit_route_filters_pages_and_refuses_bad_times(
    api: tuple[TestClient, NodeContext],
) -> None:
    c, ctx = api
    token, _ = ctx.access.create_token("auditor", Role.ADMIN, "test")
    c.headers["Authorization"] = f"Bearer {token}"
    for i in range(30):
        ctx.access.audit(f"user:u{i % 3}", "login", address=f"203.0.113.{i}")
    page = c.get("/api/v1/audit", params={"action": "login", "limit": 10}).json()["entries"]
    assert len(page) == 10
    rest = c.get(
        "/api/v1/audit", params={"action": "login", "limit": 100, "before": page[-1]["seq"]}
    ).json()["entries"]
    assert len(rest) == 20
    assert {e["seq"] for e in page}.isdisjoint({e["seq"] for e in rest})
    by_actor = c.get("/api/v1/audit", params={"actor": "user:u1"}).json()["entries"]
    assert len(by_actor) == 10
    assert [
        e["address"] for e in c.get("/api/v1/audit", params={"q": "203.0.113.17"}).json()["entries"]
    ] == ["203.0.113.17"]
    assert c.get("/api/v1/audit", params={"since": "2000-01-01T00:00:00Z"}).json()["entries"]
    assert c.get("/api/v1/audit", params={"since": "2999-01-01T00:00:00+01:00"}).json() == {
        "entries": []
    }
    for bad in ("yesterday", "2026-12-06T09:00:00", "2026-13-01T00:00:00Z"):
        answer = c.get("/api/v1/audit", params={"since": bad})
        assert answer.status_code == 400, bad
        assert "since/until" in answer.json()["error"]
    for params in ({"limit": 0}, {"limit": 1001}, {"before": 0}, {"q": "x" * 201}):
        assert c.get("/api/v1/audit", params=params).status_code == 422, params


@pytest.mark.parametrize("value", ["1" + "0" * 30, "-" + "9" * 25, "nan", "inf", "1e999"])
def test_out_of_range_numbers_in_the_audit_query_are_a_clear_4xx(
    api: tuple[TestClient, NodeContext], value: str
) -> None:
    c, ctx = api
    token, _ = ctx.access.create_token("auditor", Role.ADMIN, "test")
    for name in ("before", "limit", "since", "until"):
        answer = c.get(
            "/api/v1/audit", params={name: value}, headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code in (200, 400, 422), (name, answer.status_code, answer.text)
