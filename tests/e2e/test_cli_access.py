"""The credential commands against a real node (``logfactory serve`` as a subprocess, which
writes admin-credentials.json on its first start): every change the CLI makes is checked by
what the node then does with a credential (a login, a request inside and outside a scope, a
revoked token at its next request), and by the audit trail naming who made it."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from tests.helpers.nodes import NodeProcess, up
from tests.helpers.ports import free_port
from tests.helpers.waiting import wait_for

from logfactory.cli import cli
from logfactory.collect.tls import ensure_self_signed

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

# failed logins are part of these tests: a lock-out of 127.0.0.1 would hide what they check
CONFIG = """\
node: {{name: cli, data_dir: {data}}}
http: {{listen: '127.0.0.1:{port}', login_max_failures: 1000{tls}}}
"""
NO_ENV = {"LOGFACTORY_URL": None, "LOGFACTORY_TOKEN": None, "LOGFACTORY_CONFIG": None}
PASSWORD = "correct horse battery"


@dataclass
class Node:
    config: Path
    port: int
    data: Path
    process: NodeProcess

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _answers_https(port: int, cert: Path) -> bool:
    context = ssl.create_default_context(cafile=str(cert))
    try:
        with urllib.request.urlopen(
            f"https://127.0.0.1:{port}/api/v1/health", timeout=5, context=context
        ):
            return True
    except OSError:
        return False


def _start(tmp: Path, tls: tuple[Path, Path] | None = None) -> Node:
    port = free_port()
    config = tmp / "node.yaml"
    files = f", tls_cert: '{tls[0]}', tls_key: '{tls[1]}'" if tls else ""
    config.write_text(CONFIG.format(data=tmp / "data", port=port, tls=files))
    log = tmp / "node.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "logfactory", "serve", "-c", str(config), "--quiet"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp,
        )  # fmt: skip
    node = Node(config, port, tmp / "data", NodeProcess(proc, log))
    try:
        if tls is None:
            up(node.process, port)
        else:
            wait_for(lambda: _answers_https(port, tls[0]) or proc.poll() is not None, 60, "https")
            assert proc.poll() is None, node.process.output()
    except BaseException:
        node.process.stop()
        raise
    return node


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    started = _start(tmp_path_factory.mktemp("cli-access"))
    yield started
    started.process.stop()


def _cli(node: Node, *args: str, stdin: str | None = None) -> Result:
    """The command in-process (click's runner) against the node, with its config."""
    return CliRunner().invoke(cli, [*args, "-c", str(node.config)], input=stdin, env=NO_ENV)


def _ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def _cli_process(node: Node, *args: str) -> subprocess.CompletedProcess[str]:
    """The command as a person runs it: its own process, real stdout and stderr."""
    env = {k: v for k, v in os.environ.items() if k not in NO_ENV}
    return subprocess.run(
        [sys.executable, "-m", "logfactory", *args, "-c", str(node.config)],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip


def _http(
    node: Node, method: str, path: str, token: str | None = None, body: Any = None
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(node.url + path, data, headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def _login(node: Node, user: str, password: str) -> tuple[int, Any]:
    return _http(node, "POST", "/api/v1/auth/login", body={"user": user, "password": password})


def _admin_token(node: Node) -> str:
    return str(json.loads((node.data / "admin-credentials.json").read_text())["token"])


def _token_id(token: str) -> str:
    return token.split("_")[1]


def test_token_prints_only_a_token_that_the_api_accepts(node: Node) -> None:
    done = _cli_process(node, "token")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    (token,) = done.stdout.splitlines()
    assert done.stdout == token + "\n"
    status, me = _http(node, "GET", "/api/v1/auth/me", token)
    assert status == 200
    assert (me["role"], me["kind"]) == ("admin", "token")


def test_users_add_set_and_remove_decide_who_logs_in(node: Node) -> None:
    _ok(_cli(node, "users", "add", "carol", "--role", "operator", "--password-stdin",
             stdin=PASSWORD + "\n"))  # fmt: skip
    status, session = _login(node, "carol", PASSWORD)
    assert (status, session["role"]) == (200, "operator")
    assert _login(node, "carol", PASSWORD + "x")[0] == 401
    listed = json.loads(_ok(_cli(node, "users", "list", "--json")).stdout)
    carol = next(u for u in listed if u["name"] == "carol")
    assert (carol["role"], carol["disabled"], carol["expires"]) == ("operator", False, None)
    table = _ok(_cli(node, "users", "list")).stdout.splitlines()
    assert table[0].split() == ["NAME", "ROLE", "STATE", "EXPIRES", "CREATED", "CHANGED"]
    assert any(line.split()[:4] == ["carol", "operator", "active", "never"] for line in table)

    _ok(_cli(node, "users", "set", "carol", "--disable"))
    assert _login(node, "carol", PASSWORD)[0] == 401
    _ok(_cli(node, "users", "set", "carol", "--enable", "--role", "viewer"))
    status, session = _login(node, "carol", PASSWORD)
    assert (status, session["role"]) == (200, "viewer")
    _ok(_cli(node, "users", "set", "carol", "--password-stdin", stdin="another good one\n"))
    assert _login(node, "carol", PASSWORD)[0] == 401
    assert _login(node, "carol", "another good one")[0] == 200
    _ok(_cli(node, "users", "set", "carol", "--expires", "30d"))
    carol = next(u for u in json.loads(_ok(_cli(node, "users", "list", "--json")).stdout)
                 if u["name"] == "carol")  # fmt: skip
    ends = datetime.fromisoformat(carol["expires"].replace("Z", "+00:00")).timestamp()
    assert 29 * 86400 < ends - time.time() <= 30 * 86400

    _ok(_cli(node, "users", "remove", "carol"))
    assert _login(node, "carol", "another good one")[0] == 401
    listed = json.loads(_ok(_cli(node, "users", "list", "--json")).stdout)
    assert "carol" not in [u["name"] for u in listed]


def test_the_api_refusals_are_one_error_line(node: Node) -> None:
    short = _cli(node, "users", "add", "dan", "--role", "viewer", "--password-stdin", stdin="x\n")
    assert short.exit_code == 1
    assert short.stderr == "Error: a password needs at least 12 characters " \
        "(POST /api/v1/users: HTTP 400)\n"  # fmt: skip
    last = _cli(node, "users", "remove", "admin")
    assert last.exit_code == 1
    assert last.stderr.splitlines() == [
        "Error: 'admin' is the last active admin; make another admin first "
        "(DELETE /api/v1/users/admin: HTTP 409)"
    ]
    unknown = _cli(node, "tokens", "revoke", "000000000000")
    assert unknown.stderr.splitlines() == [
        "Error: no token '000000000000' (DELETE /api/v1/tokens/000000000000: HTTP 404)"
    ]


def test_a_scoped_token_works_inside_its_scope_only(node: Node) -> None:
    made = _ok(_cli(node, "tokens", "create", "jobs app", "--role", "viewer",
                    "--scope", "type:JOB_STATUS"))  # fmt: skip
    (token,) = made.stdout.splitlines()
    assert "shown this once" in made.stderr
    assert token not in made.stderr
    assert _http(node, "GET", "/api/v1/topics/events.JOB_STATUS/tail", token) == (200, [])
    status, refusal = _http(node, "GET", "/api/v1/topics/events.ALERT/tail", token)
    assert status == 403, refusal
    assert _http(node, "GET", "/api/v1/users", token)[0] == 403  # the role: viewer
    listed = json.loads(_ok(_cli(node, "tokens", "list", "--json")).stdout)
    mine = next(t for t in listed if t["id"] == _token_id(token))
    assert (mine["name"], mine["role"], mine["scopes"]) == (
        "jobs app",
        "viewer",
        ["type:JOB_STATUS"],
    )
    assert "token" not in mine  # the secret is shown once, never listed
    table = _ok(_cli(node, "tokens", "list")).stdout
    assert _token_id(token) in table
    assert token not in table


def test_revoked_and_expired_tokens_are_refused_at_their_next_request(node: Node) -> None:
    def new_token() -> str:
        out = _ok(_cli(node, "tokens", "create", "short-lived", "--role", "viewer")).stdout
        token = out.strip()
        assert _http(node, "GET", "/api/v1/auth/me", token)[0] == 200
        return token

    revoked = new_token()
    _ok(_cli(node, "tokens", "revoke", _token_id(revoked)))
    assert _http(node, "GET", "/api/v1/auth/me", revoked)[0] == 401
    expired = new_token()
    _ok(_cli(node, "tokens", "expire", _token_id(expired)))
    assert _http(node, "GET", "/api/v1/auth/me", expired)[0] == 401
    later = new_token()
    _ok(_cli(node, "tokens", "expire", _token_id(later), "--in", "7d"))
    assert _http(node, "GET", "/api/v1/auth/me", later)[0] == 200
    states = {
        line.split()[0]: line.split()[3]
        for line in _ok(_cli(node, "tokens", "list")).stdout.splitlines()[1:]
    }
    assert [states[_token_id(t)] for t in (revoked, expired, later)] == [
        "revoked", "expired", "active",
    ]  # fmt: skip
    listed = {t["id"]: t for t in json.loads(_ok(_cli(node, "tokens", "list", "--json")).stdout)}
    iso = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
    assert iso.fullmatch(listed[_token_id(revoked)]["revoked"])
    assert iso.fullmatch(listed[_token_id(later)]["expires"])
    assert listed[_token_id(later)]["revoked"] is None


def test_the_audit_trail_names_who_made_each_change(node: Node) -> None:
    admin = f"token:{_token_id(_admin_token(node))}"
    _ok(_cli(node, "users", "add", "erin", "--role", "viewer", "--password-stdin",
             stdin=PASSWORD + "\n"))  # fmt: skip
    made = _ok(_cli(node, "tokens", "create", "erin's app", "--role", "viewer")).stdout.strip()
    _ok(_cli(node, "tokens", "revoke", _token_id(made)))
    assert _login(node, "\x1b[31merin", PASSWORD)[0] == 401  # a name no user may have

    lines = json.loads(_ok(_cli(node, "audit", "--actor", admin, "--json")).stdout)
    done = [(e["action"], e["target"]) for e in lines]
    assert done[:3] == [
        ("token_revoked", f"token:{_token_id(made)}"),
        ("token_created", f"token:{_token_id(made)}"),
        ("user_created", "erin"),
    ]
    assert {e["address"] for e in lines[:3]} == {"127.0.0.1"}
    one = json.loads(_ok(_cli(node, "audit", "--action", "user_created", "--grep", "erin",
                              "--json")).stdout)  # fmt: skip
    assert [(e["actor"], e["target"]) for e in one] == [(admin, "erin")]

    table = _ok(_cli(node, "audit", "--since", "1h", "--limit", "4")).stdout.splitlines()
    assert table[0].split() == ["TIME", "ACTOR", "ACTION", "TARGET", "OUTCOME", "ADDRESS",
                                "DETAIL"]  # fmt: skip
    assert len(table) == 5
    failed = table[1].split()
    # a name no user may have is not an actor: the node keeps it escaped in the details
    assert failed[1:3] == ["user:?", "login_failed"]
    assert "\\x1b[31merin" in table[1]  # escaped, not obeyed
    assert "\x1b" not in "\n".join(table)
    assert table[2].split()[1:4] == [admin, "token_revoked", f"token:{_token_id(made)}"]


def test_a_wrong_token_is_one_error_line_without_the_token(node: Node) -> None:
    wrong = "lf_000000000000_" + "w" * 43
    done = _cli_process(node, "users", "list", "--token", wrong)
    assert done.returncode == 1
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("Error: unknown, expired or revoked token")
    assert line.endswith("(GET /api/v1/users: HTTP 401)")
    assert wrong not in line


def test_a_token_below_admin_is_refused_with_the_role_it_needs(node: Node) -> None:
    viewer = _ok(_cli(node, "tokens", "create", "look only", "--role", "viewer")).stdout.strip()
    refused = CliRunner().invoke(
        cli, ["tokens", "list"], env={**NO_ENV, "LOGFACTORY_URL": node.url,
                                      "LOGFACTORY_TOKEN": viewer},
    )  # fmt: skip
    assert refused.exit_code == 1
    assert refused.stderr.splitlines() == [
        "Error: this needs the role admin (or one above it); 'look only' has viewer "
        "(GET /api/v1/tokens: HTTP 403)"
    ]


def test_token_renew_replaces_the_local_admin_token(node: Node) -> None:
    old = _admin_token(node)
    _ok(_cli(node, "tokens", "revoke", _token_id(old)))  # revoked by itself, by mistake
    stuck = _cli(node, "users", "list")
    assert stuck.exit_code == 1
    assert stuck.stderr.endswith(
        f"the local admin token no longer works: `logfactory token --renew -c {node.config}` "
        "makes a new one\n"
    )
    done = _cli_process(node, "token", "--renew")
    assert done.returncode == 0, done.stderr
    (new,) = done.stdout.splitlines()
    assert new != old
    assert "the old one is revoked" in done.stderr
    assert _http(node, "GET", "/api/v1/auth/me", old)[0] == 401
    assert _http(node, "GET", "/api/v1/auth/me", new)[0] == 200
    assert _cli_process(node, "token").stdout == new + "\n"
    assert (node.data / "admin-credentials.json").stat().st_mode & 0o777 == 0o600
    # the CLI's own calls follow the file
    assert "admin" in _ok(_cli(node, "users", "list")).stdout

    (node.data / "admin-credentials.json").unlink()  # lost
    assert _cli_process(node, "token").returncode == 1
    again = _cli_process(node, "token", "--renew")
    assert again.returncode == 0, again.stderr
    assert _http(node, "GET", "/api/v1/auth/me", again.stdout.strip())[0] == 200
    # the lost token is not known to the renewal, so it stays valid until revoked by its id
    assert _http(node, "GET", "/api/v1/auth/me", new)[0] == 200
    _ok(_cli(node, "tokens", "revoke", _token_id(new)))
    assert _http(node, "GET", "/api/v1/auth/me", new)[0] == 401
    assert _admin_token(node) == again.stdout.strip()


def test_users_add_asks_the_password_twice_on_a_terminal_without_echo(node: Node) -> None:
    controller, terminal = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in NO_ENV}
    args = ["users", "add", "frank", "--role", "viewer", "-c", str(node.config)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "logfactory", *args],
        stdin=terminal, stdout=terminal, stderr=terminal, env=env, start_new_session=True,
    )  # fmt: skip
    os.close(terminal)
    seen = b""

    def read_until(text: bytes) -> None:
        nonlocal seen
        deadline = time.monotonic() + 60
        while text not in seen:
            left = deadline - time.monotonic()
            assert left > 0, f"no {text!r} on the terminal; it showed {seen!r}"
            ready, _, _ = select.select([controller], [], [], left)
            if ready:
                try:
                    chunk = os.read(controller, 4096)
                except OSError:  # the process closed the terminal
                    chunk = b""
                assert chunk, f"the terminal closed before {text!r}; it showed {seen!r}"
                seen += chunk

    try:
        read_until(b"Password: ")
        os.write(controller, PASSWORD.encode() + b"\n")
        read_until(b"Repeat the password: ")
        os.write(controller, PASSWORD.encode() + b"\n")
        read_until(b"user frank added")
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(controller)
    assert PASSWORD.encode() not in seen
    assert _login(node, "frank", PASSWORD)[0] == 200


def test_an_https_node_is_verified_against_its_own_certificate(tmp_path: Path) -> None:
    cert, key = ensure_self_signed(tmp_path / "tls", "cli-node")  # SANs: localhost, 127.0.0.1
    node = _start(tmp_path, (cert, key))
    try:
        local = _cli(node, "users", "list")  # https://127.0.0.1:PORT, its certificate trusted
        assert local.exit_code == 0, local.output
        assert local.stdout.splitlines()[1].split()[:3] == ["admin", "admin", "active"]
        token = _admin_token(node)
        remote = ["users", "list", "--url", f"https://localhost:{node.port}", "--token", token]
        untrusted = CliRunner().invoke(cli, remote, env=NO_ENV)
        assert untrusted.exit_code == 1
        assert untrusted.stderr.startswith(
            f"Error: cannot verify the certificate of https://localhost:{node.port}"
        )
        trusted = CliRunner().invoke(cli, [*remote, "--ca-file", str(cert)], env=NO_ENV)
        assert trusted.exit_code == 0, trusted.output
        plain = ["users", "list", "--url", f"http://127.0.0.1:{node.port}", "--token", token]
        refused = CliRunner().invoke(cli, plain, env=NO_ENV)
        assert refused.exit_code == 1
        assert "does it serve https?" in refused.stderr
        assert len(refused.stderr.splitlines()) == 1
    finally:
        node.process.stop()
