"""The README's quick start, command by command, against a demo node: each one shows what the
README says it shows (the dead-letter example, the password attack sent with `logger`, the gzip
ingest example and its warning for a tag the node cannot route, the SSE example).

The commands are the README's own (checked to be there, so the two cannot drift apart), with
the demo's ports and data directory moved into the test's sandbox. The HTTP ones carry
``Authorization: Bearer $(.venv/bin/logfactory token)`` as the README's do: without it the node
answers 401.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.nodes import ROOT, admin_token, demo_config
from tests.helpers.waiting import wait_for

from logfactory.config import load_config
from logfactory.subscribe import Subscriber

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

README = (ROOT / "README.md").read_text()
DEADLETTER_CMD = "logfactory tail logs.deadletter --count 1"
AUTH_HEADER = '-H "Authorization: Bearer $(.venv/bin/logfactory token)"'
SSE_URL = "http://127.0.0.1:8080/api/v1/subscribe?types=ALERT"
ATTACK_LINE = "Failed password for invalid user mallory from 10.0.0.9 port 424$i ssh2"
INGEST_LINE = (
    "<38>Dec  6 01:40:20 web01 sshd[4242]: Accepted publickey for alice from 10.0.0.7 port "
    "50022 ssh2"
)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def _cli(config: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "logfactory", *args, "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _logfactory_token(config: Path) -> str:
    """What ``$(.venv/bin/logfactory token)`` puts into the README's ``curl`` lines: the command
    itself, run on the demo's configuration; it prints the token and nothing else."""
    out = _cli(config, "token")
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    assert token == admin_token(Path(load_config(config).node.data_dir))  # the node's own
    return token


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_readme_commands_show_what_it_says(tmp_path: Path, start_node: Any) -> None:
    assert DEADLETTER_CMD in README
    assert ATTACK_LINE in README
    assert "for i in 1 2 3 4 5; do" in README
    assert INGEST_LINE in README
    assert "ingest?source=syslog" in README
    # both curl lines carry the token, on the line before their URL
    for url in (SSE_URL, "http://127.0.0.1:8080/api/v1/ingest?source=syslog"):
        before_url = README.split(url, 1)[0].rsplit("curl", 1)[1]
        assert AUTH_HEADER in before_url, url
    config_path, syslog_port, http_port = demo_config(tmp_path)
    config = load_config(config_path)
    node = start_node(config_path)
    base = f"http://127.0.0.1:{http_port}"
    wait_for(lambda: _answers(f"{base}/api/v1/health"), 30, "the node's health endpoint")
    auth = {"Authorization": f"Bearer {_logfactory_token(config_path)}"}

    with Subscriber(["ALERT", "SSH_LOGIN"], config=config, start="latest") as sub:
        # the attack, exactly as the README sends it: five lines from `logger` over UDP
        for i in range(1, 6):
            line = ATTACK_LINE.replace("$i", str(i))
            subprocess.run(
                ["logger", "--server", "127.0.0.1", "--port", str(syslog_port), "--udp",
                 "-t", "sshd", line],
                check=True,
            )  # fmt: skip
        # the ingest example: one gzip'd NDJSON record with ?source=syslog and the token
        body = gzip.compress(json.dumps({"line": INGEST_LINE, "host": "web01"}).encode() + b"\n")
        headers = {"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"}
        url = f"{base}/api/v1/ingest?source=syslog"
        assert _post(url, body, headers)[0] == 401  # without the token: nothing taken
        status, answer = _post(url, body, headers | auth)
        assert (status, answer) == (200, {"accepted": 1, "rejected": 0, "errors": []})

        attack = login = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (attack is None or login is None):
            for env in sub.poll(timeout=0.5):
                if env["body"].get("account") == "mallory":
                    attack = env
                if env["header"]["type"] == "SSH_LOGIN" and env["body"].get("user") == "alice":
                    login = env
    assert attack is not None, "no PASSWORD_ATTACK for mallory"
    assert attack["header"]["subtype"] == "PASSWORD_ATTACK"
    assert attack["body"]["count"] == 5
    assert attack["body"]["addrs"] == ["10.0.0.9"]
    assert login is not None, "the ingest example made no SSH_LOGIN"
    assert login["header"]["host"] == "web01"
    assert login["body"]["addr"] == "10.0.0.7"

    # the dead-letter example ends by itself: the demo's torn heartbeat comes at ~18 s
    out = _cli(config_path, "tail", "logs.deadletter", "--count", "1")
    assert out.returncode == 0, out.stderr
    letter = json.loads(out.stdout)
    assert letter["reason"] == "not valid JSON: Input data was truncated", letter
    assert letter["source"] == "cluster", letter
    assert letter["stage"] == "decode", letter

    # a tag the demo cannot route: accepted, with the warning the README describes
    status, answer = _post(f"{base}/api/v1/ingest?source=app", b"hello\n", auth)
    assert status == 200
    assert answer["accepted"] == 1
    assert "no route" in answer["warnings"][0]
    assert "logs.deadletter" in answer["warnings"][0]

    # the SSE example: with the token, the password attack's ALERT as an event stream
    sse = base + SSE_URL.removeprefix("http://127.0.0.1:8080") + "&from=earliest&limit=1"
    with urllib.request.urlopen(urllib.request.Request(sse, headers=auth), timeout=30) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        stream = resp.read().decode()
    assert "event: ALERT" in stream, stream
    assert node.stop() == 0
