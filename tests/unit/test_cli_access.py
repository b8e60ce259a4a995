"""The credential commands where no node is needed: where they look for the node and the
token, what they refuse before sending anything, and how they fail when nothing answers or
something other than a node does. Against a real node: tests/e2e/test_cli_access.py."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner, Result
from tests.helpers.ports import free_port

from logfactory.cli import cli
from logfactory.cli_api import clean, local_url
from logfactory.config import load_config

TOKEN = "lf_0123456789ab_" + "s" * 43
NO_ENV = {"LOGFACTORY_URL": None, "LOGFACTORY_TOKEN": None, "LOGFACTORY_CONFIG": None}


def _config(tmp_path: Path, http: str = "{listen: 127.0.0.1:8080}") -> Path:
    path = tmp_path / "node.yaml"
    path.write_text(f"node: {{name: n, data_dir: {tmp_path / 'data'}}}\nhttp: {http}\n")
    return path


def _run(*args: str, stdin: str | None = None, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, env={**NO_ENV, **(env or {})})


def _one_error_line(result: Result) -> str:
    """The failure's stderr: exactly one ``Error:`` line, no traceback, nothing on stdout."""
    assert result.stdout == "", result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("http", "url"),
    [
        ("{listen: 127.0.0.1:8080}", "http://127.0.0.1:8080"),
        ("{listen: '0.0.0.0:9000'}", "http://127.0.0.1:9000"),
        ("{listen: '[::]:9000'}", "http://[::1]:9000"),
        ("{listen: '[::1]:9001'}", "http://[::1]:9001"),
        ("{listen: 'logs.example.org:8443', tls_cert: c.pem, tls_key: k.pem}",
         "https://logs.example.org:8443"),
    ],
)  # fmt: skip
def test_the_url_comes_from_http_listen_as_a_local_client_reaches_it(
    tmp_path: Path, http: str, url: str
) -> None:
    assert local_url(load_config(_config(tmp_path, http))) == url


def test_a_node_that_serves_no_api_is_said_so(tmp_path: Path) -> None:
    config = _config(tmp_path, "{listen: 127.0.0.1:8080, enabled: false}")
    line = _one_error_line(_run("users", "list", "-c", str(config)))
    assert "http.enabled is false" in line
    assert "--url" in line


def test_no_node_says_which_url_and_how_to_start_one(tmp_path: Path) -> None:
    port = free_port()
    config = _config(tmp_path, f"{{listen: 127.0.0.1:{port}}}")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "admin-credentials.json").write_text(json.dumps({"token": TOKEN}))
    line = _one_error_line(_run("tokens", "list", "-c", str(config)))
    assert f"no node answers at http://127.0.0.1:{port}" in line
    assert f"logfactory run -c {config}" in line
    assert TOKEN not in line


def test_the_local_token_is_never_sent_to_a_url_given_by_hand(tmp_path: Path) -> None:
    """With $LOGFACTORY_URL and no token, the command stops before connecting anywhere."""
    heard: list[str] = []
    with _node_like(heard, lambda h: h.answer(200, b"[]")) as url:
        (tmp_path / "data").mkdir()
        (tmp_path / "data" / "admin-credentials.json").write_text(json.dumps({"token": TOKEN}))
        result = _run("users", "list", "-c", str(_config(tmp_path)), env={"LOGFACTORY_URL": url})
    line = _one_error_line(result)
    assert "pass --token or set LOGFACTORY_TOKEN" in line
    assert heard == []


def test_the_environment_gives_url_and_token(tmp_path: Path) -> None:
    heard: list[str] = []
    body = json.dumps([{"name": "amy", "role": "viewer", "created": 0, "changed": 0,
                        "expires": None, "disabled": False}]).encode()  # fmt: skip
    with _node_like(heard, lambda h: h.answer(200, body)) as url:
        result = _run("users", "list", env={"LOGFACTORY_URL": url, "LOGFACTORY_TOKEN": TOKEN})
    assert result.exit_code == 0, result.output
    assert heard == [f"GET /api/v1/users Bearer {TOKEN}"]
    assert result.stdout.splitlines()[1].split() == [
        "amy", "viewer", "active", "never", "1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z",
    ]  # fmt: skip


def test_a_redirect_is_not_followed_with_the_token(tmp_path: Path) -> None:
    heard: list[str] = []
    with _node_like(heard, lambda h: h.answer(200, b"[]")) as elsewhere:
        target = elsewhere + "/api/v1/users"
        with _node_like([], lambda h: h.redirect(target)) as url:
            result = _run("users", "list", "--url", url, "--token", TOKEN)
    line = _one_error_line(result)
    assert "redirects /api/v1/users to" in line
    assert "--url" in line
    assert heard == []


def test_an_answer_that_is_not_json_or_a_refusal_is_one_line(tmp_path: Path) -> None:
    with _node_like([], lambda h: h.answer(200, b"<html>hello</html>")) as url:
        line = _one_error_line(_run("tokens", "list", "--url", url, "--token", TOKEN))
    assert "not JSON: is it a logfactory node?" in line
    refusal = json.dumps({"error": "no\nway \x1b[31mred"}).encode()
    with _node_like([], lambda h: h.answer(409, refusal)) as url:
        line = _one_error_line(_run("tokens", "revoke", "x1", "--url", url, "--token", TOKEN))
    assert line == "Error: no\\x0away \\x1b[31mred (DELETE /api/v1/tokens/x1: HTTP 409)"


def test_token_without_the_file_says_where_the_node_writes_it(tmp_path: Path) -> None:
    config = _config(tmp_path)
    line = _one_error_line(_run("token", "-c", str(config)))
    assert f"no {tmp_path / 'data' / 'admin-credentials.json'}" in line
    assert "first start" in line


@pytest.mark.parametrize("damage", ["not json", "dir", "no token"])
def test_token_with_an_unreadable_file_is_a_clear_error(tmp_path: Path, damage: str) -> None:
    config = _config(tmp_path)
    path = tmp_path / "data" / "admin-credentials.json"
    path.parent.mkdir()
    if damage == "dir":
        path.mkdir()
    else:
        path.write_text("{oops" if damage == "not json" else '{"user": "admin"}')
    line = _one_error_line(_run("token", "-c", str(config)))
    assert str(path) in line
    assert "logfactory token --renew" in line


def test_token_renew_needs_a_node_that_started_here(tmp_path: Path) -> None:
    config = _config(tmp_path)
    line = _one_error_line(_run("token", "--renew", "-c", str(config)))
    assert "no node has started" in line
    assert f"logfactory run -c {config}" in line
    assert not (tmp_path / "data" / "access.db").exists()


def test_token_renew_runs_only_as_the_owner_of_the_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root's renewal would leave root's files where the node's user must read them."""
    config = _config(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "access.db").touch()
    owner = (tmp_path / "data").stat().st_uid
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)
    line = _one_error_line(_run("token", "--renew", "-c", str(config)))
    assert f"{tmp_path / 'data'} belongs to " in line
    assert "logfactory token --renew" in line
    assert (tmp_path / "data" / "access.db").stat().st_size == 0  # not opened


def test_a_password_is_never_asked_without_a_terminal() -> None:
    args = ["users", "add", "amy", "--role", "viewer", "--url", "http://127.0.0.1:9", "--token"]
    line = _one_error_line(_run(*args, TOKEN))
    assert "--password-stdin" in line
    line = _one_error_line(_run(*args, TOKEN, "--password-stdin", stdin=""))
    assert "no password on stdin" in line


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["tokens", "expire", "abc", "--in", "5 weeks"], "'--in'"),
        (["tokens", "create", "x", "--role", "viewer", "--expires", "soon"], "'--expires'"),
        (["users", "set", "amy"], "nothing to change"),
        (["users", "set", "amy", "--expires", "1d", "--never-expires"], "not both"),
        (["users", "list", "--url", "ftp://x"], "not an http(s) URL"),
        (["users", "list", "--token", "a\nb", "--url", "http://127.0.0.1:9"], "one line"),
    ],
)
def test_bad_options_are_usage_errors_before_anything_is_sent(args: list[str], says: str) -> None:
    result = _run(*args, *([] if "--url" in args else ["--url", "http://127.0.0.1:9"]),
                  *([] if "--token" in args else ["--token", TOKEN]))  # fmt: skip
    assert result.exit_code == 2, result.output
    assert says in result.stderr
    assert "Traceback" not in result.output


def test_clean_escapes_what_could_drive_a_terminal() -> None:
    assert clean("a\x1b[2Jb\nc\x9bd\ttab") == "a\\x1b[2Jb\\x0ac\\x9bd\\x09tab"
    assert clean("user:élodie") == "user:élodie"


# -- something that is not a node ---------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    def _any(self) -> None:
        self.server.heard.append(  # type: ignore[attr-defined]
            f"{self.command} {self.path} {self.headers.get('Authorization', '')}"
        )
        self.server.reply(self)  # type: ignore[attr-defined]

    do_GET = do_POST = do_PATCH = do_DELETE = _any

    def answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, to: str) -> None:
        self.send_response(302)
        self.send_header("Location", to)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True


@contextmanager
def _node_like(heard: list[str], reply: Callable[[_Handler], None]) -> Iterator[str]:
    """A real HTTP server on loopback that notes each request and answers with ``reply``."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.heard = heard  # type: ignore[attr-defined]
    server.reply = reply  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_audit_pages_through_more_lines_than_one_request_gives(tmp_path: Path) -> None:
    """The API gives 1,000 lines a request at most; --limit beyond that pages with ``before``."""
    line = {"actor": "node", "action": "a", "target": None, "outcome": "ok", "address": None}
    trail: list[dict[str, Any]] = [
        {"seq": s, "time": s, **line, "detail": {}} for s in range(2500, 0, -1)
    ]
    heard: list[str] = []

    def page(handler: _Handler) -> None:
        query = parse_qs(urlsplit(handler.path).query)
        before = int(query.get("before", ["999999"])[0])
        limit = int(query["limit"][0])
        assert limit <= 1000
        lines = [e for e in trail if int(e["seq"]) < before][:limit]
        handler.answer(200, json.dumps({"entries": lines}).encode())

    with _node_like(heard, page) as url:
        some = _run("audit", "--limit", "1500", "--json", "--url", url, "--token", TOKEN)
        every = _run("audit", "--limit", "100000", "--json", "--url", url, "--token", TOKEN)
    assert [e["seq"] for e in json.loads(some.stdout)] == list(range(2500, 1000, -1))
    printed = json.loads(every.stdout)
    assert [e["seq"] for e in printed] == [e["seq"] for e in trail]
    assert printed[-1] == {**trail[-1], "time": "1970-01-01T00:00:01.000000Z"}
    asked = [h.split()[1] for h in heard]
    assert asked[:2] == ["/api/v1/audit?limit=1000", "/api/v1/audit?limit=500&before=1501"]
    assert len(asked) == 2 + 3  # 1000 + 1000 + 500 (fewer than asked: the end)


def test_an_answer_of_another_shape_is_one_line() -> None:
    with _node_like([], lambda h: h.answer(200, b'{"users": []}')) as url:
        line = _one_error_line(_run("users", "list", "--url", url, "--token", TOKEN))
    assert "in a shape this command does not know" in line


def test_a_token_sent_in_clear_text_off_this_machine_is_warned_about() -> None:
    # `users set` with nothing to change stops after the connection is prepared, before a
    # request: 192.0.2.1 (TEST-NET-1) is never contacted
    off = _run("users", "set", "amy", "--url", "http://192.0.2.1:9", "--token", TOKEN)
    assert off.exit_code == 2
    assert off.stderr.startswith(
        "Warning: the token goes to 192.0.2.1 in clear text (http): anyone on the way can "
        "read it; give the node a certificate (http.tls_cert) and use https\n"
    )
    with _node_like([], lambda h: h.answer(200, b"[]")) as url:
        quiet = _run("users", "list", "--url", url, "--token", TOKEN)
    assert quiet.exit_code == 0, quiet.output
    assert quiet.stderr == ""  # loopback: the token never leaves this machine
