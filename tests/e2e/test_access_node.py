"""A real node's first start makes the admin credential: in an owner-only file, said where and
never printed; the API refuses what has no credential and serves the file's token and password;
a second start keeps the credential it has."""

from __future__ import annotations

import json
import stat
import urllib.error
import urllib.request
from collections.abc import Callable
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.nodes import NodeProcess, demo_config, health, up
from tests.helpers.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

Start = Callable[..., NodeProcess]


def call(
    port: int, path: str, *, headers: dict[str, str] | None = None, body: Any = None
) -> tuple[int, Message, Any]:
    """``(status, headers, JSON body)`` of a request to the node's API (headers by any case)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        headers={**(headers or {}), **({"Content-Type": "application/json"} if data else {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.headers, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, json.loads(exc.read())


def secrets_in(texts: list[bytes], secrets: list[str]) -> list[str]:
    """The secrets that occur in any of ``texts``."""
    return [s for s in secrets for t in texts if s.encode() in t]


def test_first_start_makes_an_owner_only_admin_credential_that_works_and_stays(
    tmp_path: Path, start_node: Start
) -> None:
    config, _syslog_port, http_port = demo_config(tmp_path, rate=1)
    data = tmp_path / "data"
    creds_file = data / "admin-credentials.json"
    node = start_node(config)
    up(node, http_port)

    # the file: owner-only, with the user, the password and a token
    assert stat.S_IMODE(creds_file.stat().st_mode) == 0o600
    creds = json.loads(creds_file.read_text())
    assert set(creds) == {"user", "password", "token"}
    assert creds["user"] == "admin"
    password, token = creds["password"], creds["token"]
    assert len(password) >= 12
    assert token.startswith("lf_")
    secrets = [password, token, token.split("_", 2)[2]]

    # the node says where the file is, and never what is in it
    wait_for(lambda: str(creds_file) in node.output(), 30, "the node to say where the file is")
    assert "first start" in node.output()
    assert secrets_in([node.output().encode()], secrets) == []

    # the API: health is open, the rest needs a credential
    wait_for(lambda: health(http_port)[0] == 200, 90, "a healthy node")
    status, headers, body = call(http_port, "/api/v1/stats")
    assert status == 401
    assert headers["WWW-Authenticate"] == "Bearer"
    assert "credential" in body["error"]
    bearer = {"Authorization": f"Bearer {token}"}
    status, _, body = call(http_port, "/api/v1/stats", headers=bearer)
    assert status == 200
    assert body["node"] == "demo"
    status, _, _ = call(http_port, "/api/v1/stats", headers={"Authorization": "Bearer lf_x"})
    assert status == 401

    # the console's login with the file's password
    status, headers, body = call(
        http_port, "/api/v1/auth/login", body={"user": "admin", "password": password}
    )
    assert status == 200
    assert body["role"] == "admin"
    (cookie,) = [
        c.split(";", 1)[0] for c in headers.get_all("Set-Cookie", []) if "lf_session=" in c
    ]
    status, _, me = call(http_port, "/api/v1/auth/me", headers={"Cookie": cookie})
    assert status == 200
    assert (me["name"], me["kind"]) == ("admin", "session")
    wrong = call(http_port, "/api/v1/auth/login", body={"user": "admin", "password": "x" * 12})
    assert wrong[0] == 401

    first_text = creds_file.read_bytes()
    first_mtime = creds_file.stat().st_mtime_ns
    assert node.stop() == 0
    outputs = [node.output().encode()]

    # a second start keeps the credential: same file, same token, nothing new said
    again = start_node(config)
    up(again, http_port)
    status, _, _ = call(http_port, "/api/v1/stats", headers=bearer)
    assert status == 200
    assert creds_file.read_bytes() == first_text
    assert creds_file.stat().st_mtime_ns == first_mtime
    assert "first start" not in again.output()
    status, _, tokens = call(http_port, "/api/v1/tokens", headers=bearer)
    assert status == 200
    assert [t["name"] for t in tokens] == ["local admin"]
    assert again.stop() == 0
    outputs.append(again.output().encode())

    # no secret in anything the node printed or wrote but the credential file itself
    written = [p.read_bytes() for p in data.rglob("*") if p.is_file() and p != creds_file]
    assert secrets_in(outputs + written, secrets) == []
