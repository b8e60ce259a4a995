"""Browser and host safety (``logfactory.api.safety``, ``logfactory.api.hosts``): the Host
allow-list refuses before anything else runs, every answer carries the secure headers (HSTS only
over HTTPS), CORS is closed unless origins are listed, JSON routes refuse other bodies (415),
each refusal counts in /metrics, and hostile Host values get a clear 400."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send
from tests.helpers.clients import TestClient, make_client, raw_records

from logfactory.api.hosts import HostAllowList
from logfactory.api.safety import BASE_POLICY, SafetyMiddleware
from logfactory.bus.local import LocalBus
from logfactory.config import Config, ConfigError, parse_config
from logfactory.config.node import HttpConfig
from logfactory.factory.patterns.library import PatternLibrary
from logfactory.factory.patterns.topic import load_library, save_changes
from logfactory.topics import ensure_topics

SECURE = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
}
CONSOLE = "https://console.example.org"


@pytest.fixture
def api(tmp_path: Path, bus: LocalBus) -> Iterator[TestClient]:
    """The API with default settings (listening on 127.0.0.1:8080), every topic made."""
    yield from _client(tmp_path, bus, "")


def _client(tmp_path: Path, bus: LocalBus, yaml: str, **kwargs: Any) -> Iterator[TestClient]:
    config = parse_config(yaml, "t.yaml") if yaml else Config()
    ensure_topics(bus, config)
    c, ctx = make_client(tmp_path, bus, config)
    client = TestClient(c.app, client=("192.0.2.9", 40000), **kwargs)
    client.headers["Authorization"] = c.headers["Authorization"]  # make_client's admin token
    with client:
        yield client
    ctx.producer.close()


def refused(client: TestClient) -> dict[str, float]:
    """``logfactory_api_refused_total`` by reason, from /metrics."""
    text = client.get("/metrics").text
    found = re.findall(r'^logfactory_api_refused_total\{reason="(\w+)"\} (\S+)$', text, re.M)
    return {reason: float(value) for reason, value in found}


def assert_secure(headers: Any, policy: str | None = BASE_POLICY) -> None:
    for name, value in SECURE.items():
        assert headers.get_list(name) == [value], name
    if policy is not None:
        assert headers.get_list("content-security-policy") == [policy]
    assert "strict-transport-security" not in headers  # plain HTTP


# -- the Host allow-list ---------------------------------------------------------------------
def test_a_host_not_served_is_400_before_anything_else_runs(api: TestClient, bus: LocalBus) -> None:
    r = api.post("/api/v1/ingest?source=app", content="a line\n", headers={"host": "evil.example"})
    assert r.status_code == 400
    assert r.json() == {
        "error": "host 'evil.example' is not served here; add it to http.allowed_hosts"
    }
    assert_secure(r.headers)
    assert raw_records(bus) == []  # the route never ran
    assert refused(api) == {"host": 1.0, "cors": 0.0, "content_type": 0.0}
    ok = api.post("/api/v1/ingest?source=app", content="a line\n")  # Host: localhost
    assert ok.status_code == 200
    assert [r.line for _k, r in raw_records(bus)] == ["a line"]


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("localhost", 200),
        ("localhost:8080", 200),
        ("LocalHost.:9", 200),  # case and the root's dot do not matter
        ("127.0.0.1:1", 200),
        ("[::1]", 200),
        ("[::1]:8080", 200),
        ("[0:0::1]:8080", 200),  # an address compares by value
        ("localhost.evil.example", 400),
        ("127.0.0.2", 400),
        ("::1", 400),  # a bare IPv6 address is no Host
        ("[::1", 400),
        ("localhost:http", 400),
        ("localhost:80:80", 400),
        ("testserver", 400),  # starlette's test client's name is nothing special
    ],
)
def test_default_hosts_are_the_listen_address_and_loopback_names_on_any_port(
    api: TestClient, host: str, status: int
) -> None:
    r = api.get("/api/v1/stats", headers={"host": host})
    assert r.status_code == status, r.text
    assert_secure(r.headers)


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("logs.example.org", 200),
        ("Logs.Example.Org:443", 200),
        ("node7:8443", 200),
        ("node7", 400),  # listed with a port: that port only
        ("node7:8080", 400),
        ("[::1]:5", 200),  # listed bare, as ::1
        ("localhost", 400),  # a list replaces the defaults
        ("node8", 200),  # listed as node8:443, which a browser sends as plain node8
        ("node8:443", 200),
        ("node8:80", 400),
    ],
)
def test_configured_hosts_replace_the_defaults(
    tmp_path: Path, bus: LocalBus, host: str, status: int
) -> None:
    yaml = "http: {allowed_hosts: [logs.example.org, 'node7:8443', '::1', 'node8:443']}\n"
    for client in _client(tmp_path, bus, yaml):
        assert client.get("/api/v1/stats", headers={"host": host}).status_code == status


def test_a_star_answers_every_host(tmp_path: Path, bus: LocalBus) -> None:
    for client in _client(tmp_path, bus, "http: {allowed_hosts: ['*']}\n"):
        r = client.get("/api/v1/stats", headers={"host": "evil.example"})
        assert r.status_code == 200
        assert_secure(r.headers)  # headers do not depend on the check


def test_on_every_interface_the_machines_names_and_addresses_are_served() -> None:
    names = ["node7", "node7.example.org", "10.1.2.3", "fe80::1"]
    hosts = HostAllowList.from_config(HttpConfig(listen="0.0.0.0:8080"), machine_names=names)
    assert hosts is not None
    for host in ("node7:8080", "node7.example.org", "10.1.2.3:1", "[fe80::1]", "0.0.0.0:8080"):
        assert hosts.allows(host), host
    assert not hosts.allows("node8")
    one = HostAllowList.from_config(HttpConfig(listen="192.0.2.5:8080"), machine_names=names)
    assert one is not None
    assert one.allows("192.0.2.5:8080")
    assert not one.allows("node7")  # not listening on every interface: the listen name only


def test_the_address_a_connection_arrived_at_is_always_served() -> None:
    """A browser sends an IP literal only for a page loaded from that address: the node's own
    origin, so no DNS rebinding. A load balancer probing by address needs no entry."""
    hosts = HostAllowList(["logs.example.org"])
    assert hosts.allows("10.9.8.7:8080", ("10.9.8.7", 8080))
    assert hosts.allows("[2001:db8::7]", ("2001:db8:0::7", 8080))
    assert hosts.allows("10.9.8.7", ("::ffff:10.9.8.7", 8080))  # dual-stack socket
    assert not hosts.allows("10.9.8.6", ("10.9.8.7", 8080))
    assert not hosts.allows("testserver", ("testserver", 80))  # a name is never taken from it
    assert not hosts.allows("10.9.8.7", None)  # a Unix socket has no address


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ([("host", "")], "the request's Host header is empty"),
        ([("host", "h" * 10_000)], "host 'hhhh"),
        ([("host", b"\xff\xfe\xc3.example")], "is not served here"),
        ([("host", "localhost"), ("host", "evil.example")], "the request has 2 Host headers"),
        ([("host", "localhost"), ("host", "localhost")], "the request has 2 Host headers"),
    ],
)
def test_hostile_host_values_are_a_clear_400(
    api: TestClient, headers: list[tuple[str, str | bytes]], error: str
) -> None:
    r = api.get("/api/v1/stats", headers=headers)
    assert r.status_code == 400
    assert error in r.json()["error"]
    assert len(r.content) < 300  # a 10 KB Host is not echoed back
    assert_secure(r.headers)


def asgi_call(app: Any, scope: Scope) -> list[Message]:
    """Run ``app`` on one request with an empty body; the messages it sent."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def test_a_request_without_host_is_400() -> None:
    ran: list[Scope] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        ran.append(scope)

    counted: list[str] = []
    hosts = HostAllowList(["localhost"])
    mw = SafetyMiddleware(inner, hosts=hosts, origins=frozenset(), hsts=True, count=counted.append)
    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "scheme": "http",
             "server": ("127.0.0.1", 8080), "http_version": "1.0"}  # fmt: skip
    sent = asgi_call(mw, scope)
    assert sent[0]["status"] == 400
    assert b"the request has no Host header" in sent[1]["body"]
    assert ran == []
    assert counted == ["host"]


# -- secure headers ------------------------------------------------------------------------
def test_every_answer_carries_the_secure_headers(api: TestClient, bus: LocalBus) -> None:
    assert_secure(api.get("/api/v1/stats").headers)  # JSON
    missing = api.get("/api/v1/no-such-route")
    assert missing.status_code == 404
    assert_secure(missing.headers)
    bad = api.get("/api/v1/subscribe", params={"types": "ALERT", "from": "nowhere"})
    assert bad.status_code in (400, 422)
    assert_secure(bad.headers)
    assert_secure(api.get("/metrics").headers)
    assert_secure(api.get("/").headers)  # the index page: no script, the API's own policy
    assert_secure(api.get("/docs/static/swagger-ui.css").headers)
    # a server-sent event stream: headers in its start, the events still arrive
    stream = api.get("/api/v1/subscribe", params={"types": "ALERT", "idle": 0.2})
    assert stream.status_code == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert stream.text.startswith(": subscribed")
    assert_secure(stream.headers)


def test_an_unexpected_failure_is_a_500_with_the_headers(api: TestClient) -> None:
    def boom() -> None:
        raise RuntimeError("a bug with a secret in it")

    app = api.app
    assert isinstance(app, FastAPI)
    app.add_api_route("/boom", boom)
    app.middleware_stack = None  # built again, with the new route
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/boom")
    assert r.status_code == 500
    assert r.json() == {"error": "the node failed to answer; its log says why"}
    assert "secret" not in r.text
    assert_secure(r.headers)


@pytest.mark.parametrize(("yaml", "hsts"), [("", True), ("http: {hsts: false}\n", False)])
def test_hsts_only_over_https_and_only_when_asked(
    tmp_path: Path, bus: LocalBus, yaml: str, hsts: bool
) -> None:
    for client in _client(tmp_path, bus, yaml, base_url="https://localhost"):
        r = client.get("/api/v1/stats")
        assert r.headers.get_list("strict-transport-security") == (
            ["max-age=31536000"] if hsts else []
        )
        refusal = client.get("/api/v1/stats", headers={"host": "evil.example"})
        assert refusal.status_code == 400
        assert ("strict-transport-security" in refusal.headers) is hsts
        plain = TestClient(client.app)  # http://localhost
        assert "strict-transport-security" not in plain.get("/api/v1/stats").headers


def _policy(header: str) -> dict[str, str]:
    return dict(d.strip().split(" ", 1) for d in header.split(";"))


def test_docs_pages_allow_their_inline_script_by_hash_only(api: TestClient) -> None:
    swagger = api.get("/docs")
    assert_secure(swagger.headers, policy=None)
    policy = _policy(swagger.headers["content-security-policy"])
    assert policy["frame-ancestors"] == policy["base-uri"] == "'none'"
    assert policy["form-action"] == "'self'"
    inline = re.findall(rb"<script>(.*?)</script>", swagger.content, re.DOTALL)
    assert len(inline) == 1
    digest = base64.b64encode(hashlib.sha256(inline[0]).digest()).decode()
    assert policy["script-src"] == f"'self' 'sha256-{digest}'"
    redoc = _policy(api.get("/redoc").headers["content-security-policy"])
    assert redoc["script-src"] == "'self'"  # ReDoc starts from its bundle alone
    assert "unsafe-inline" not in redoc["script-src"]


# -- CORS ----------------------------------------------------------------------------------
def preflight(client: TestClient, origin: str) -> Any:
    return client.options(
        "/api/v1/patterns/p1/review",
        headers={
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type, x-csrf-token",
        },
    )


def cors_headers(headers: Any) -> list[str]:
    return [k for k in headers if k.lower().startswith("access-control-")]


def test_cors_is_closed_unless_origins_are_listed(api: TestClient) -> None:
    r = preflight(api, CONSOLE)
    assert r.status_code == 403
    assert r.json()["error"] == (
        f"origin '{CONSOLE}' may not call this API from a browser; add it to http.cors_origins"
    )
    assert cors_headers(r.headers) == []
    assert_secure(r.headers)
    simple = api.get("/api/v1/stats", headers={"origin": CONSOLE})
    assert cors_headers(simple.headers) == []  # the browser hides the answer from the page
    assert refused(api)["cors"] == 1.0


def test_listed_origins_and_only_they_get_cors_headers(tmp_path: Path, bus: LocalBus) -> None:
    yaml = f"http: {{cors_origins: ['{CONSOLE}']}}\n"
    for client in _client(tmp_path, bus, yaml):
        ok = preflight(client, CONSOLE)
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == CONSOLE
        assert ok.headers["access-control-allow-credentials"] == "true"
        allowed = ok.headers["access-control-allow-headers"].lower()
        assert {"authorization", "content-type", "x-csrf-token"} <= set(allowed.split(", "))
        assert_secure(ok.headers)
        other = preflight(client, "https://evil.example")
        assert other.status_code == 403
        assert cors_headers(other.headers) == []
        real = client.get("/api/v1/stats", headers={"origin": CONSOLE})
        assert real.headers["access-control-allow-origin"] == CONSOLE
        foreign = client.get("/api/v1/stats", headers={"origin": "https://evil.example"})
        assert "access-control-allow-origin" not in foreign.headers  # the browser hides it
        assert refused(client)["cors"] == 1.0


# -- JSON routes ---------------------------------------------------------------------------
@pytest.fixture
def disk_pattern(bus: LocalBus) -> str:
    library = PatternLibrary()
    library.observe("syslog", "Disk /dev/sda1 FULL", 1)
    library.observe("syslog", "Disk /dev/sdb2 FULL", 2)
    save_changes(bus, library)
    (entry,) = library.entries()
    return entry.id


@pytest.mark.parametrize(
    ("content_type", "said"),
    [
        ("text/plain", "not 'text/plain'"),  # what a cross-origin form or fetch may send
        ("application/x-www-form-urlencoded", "not 'application/x-www-form-urlencoded'"),
        ("multipart/form-data; boundary=x", "not 'multipart/form-data; boundary=x'"),
        (None, "none was sent"),
    ],
)
def test_a_review_that_is_not_json_is_415_and_changes_nothing(
    api: TestClient, bus: LocalBus, disk_pattern: str, content_type: str | None, said: str
) -> None:
    body = b'{"status": "alert", "reason": "forged"}'
    headers = {"content-type": content_type} if content_type else {}
    r = api.post(f"/api/v1/patterns/{disk_pattern}/review", content=body, headers=headers)
    assert r.status_code == 415
    assert r.json() == {
        "error": f"send the body as JSON, with Content-Type: application/json ({said})"
    }
    assert_secure(r.headers)
    stored = load_library(bus).get(disk_pattern)
    assert stored is not None
    assert stored.status == "new"
    assert refused(api)["content_type"] == 1.0


def test_json_with_a_charset_is_taken(api: TestClient, bus: LocalBus, disk_pattern: str) -> None:
    r = api.post(
        f"/api/v1/patterns/{disk_pattern}/review",
        content=b'{"status": "alert", "reason": "disk full"}',
        headers={"content-type": "Application/JSON; charset=utf-8"},
    )
    assert r.status_code == 200, r.text
    stored = load_library(bus).get(disk_pattern)
    assert stored is not None
    assert (stored.status, stored.reason) == ("alert", "disk full")
    assert refused(api)["content_type"] == 0.0


# -- configuration -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("yaml", "error"),
    [
        ("http: {allowed_hosts: ['https://logs.example.org']}", "http.allowed_hosts[0]"),
        ("http: {allowed_hosts: [localhost, 'a b']}", "http.allowed_hosts[1]"),
        ("http: {cors_origins: ['https://console.example.org/']}", "http.cors_origins[0]"),
        ("http: {cors_origins: ['*']}", "is not a web origin"),
        ("http: {cors_origins: [console.example.org]}", "is not a web origin"),
    ],
)
def test_entries_that_could_never_match_are_config_errors(yaml: str, error: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(error)):
        parse_config(yaml + "\n", "c.yaml")


def test_good_entries_load() -> None:
    config = parse_config(
        "http: {allowed_hosts: [logs.example.org, 'node7:8443', '[::1]:8080', '::1', '*'],\n"
        "       cors_origins: ['https://console.example.org', 'http://10.0.0.5:8080']}\n",
        "c.yaml",
    )
    assert config.http.cors_origins[1] == "http://10.0.0.5:8080"
