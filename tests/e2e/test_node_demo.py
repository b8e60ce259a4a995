"""The issue's promise, end to end: `logfactory run` on the demo config shows every event type,
real syslog peers reach it, subscribers get envelopes, and Ctrl-C stops cleanly."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no types-jsonschema in the dev set
import pytest
from tests.helpers.nodes import auth_headers, demo_config

from logfactory.config import load_config
from logfactory.event import BUILTIN_TYPES
from logfactory.schemas import schema_for
from logfactory.subscribe import Subscriber

pytestmark = pytest.mark.e2e


def _get(url: str, auth: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers=auth or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _get(url)
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{url} did not answer within {timeout}s")


def test_demo_node_shows_every_type_and_catches_a_password_attack(
    tmp_path: Path, start_node: Any
) -> None:
    config_path, syslog_port, http_port = demo_config(tmp_path)
    config = load_config(config_path)
    node = start_node(config_path)
    base = f"http://127.0.0.1:{http_port}"
    _wait_http(f"{base}/api/v1/health")

    # a password-guessing burst from a real peer, over UDP to the syslog port
    for i in range(6):
        subprocess.run(
            ["logger", "--server", "127.0.0.1", "--port", str(syslog_port), "--udp",
             "--rfc3164", "-t", "sshd", "-i",
             f"Failed password for e2e-victim from 192.0.2.{i + 1} port {40000 + i} ssh2"],
            check=True,
        )  # fmt: skip

    seen: dict[str, dict[str, Any]] = {}
    attack: dict[str, Any] | None = None
    with Subscriber(list(BUILTIN_TYPES), config=config, start="earliest") as sub:
        # a deadline, not a speed figure: how soon every type appears belongs in bench/
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and (len(seen) < len(BUILTIN_TYPES) or attack is None):
            for env in sub.poll(timeout=0.5):
                seen.setdefault(env["header"]["type"], env)
                if env["body"].get("account") == "e2e-victim":
                    attack = env
    assert set(seen) == set(BUILTIN_TYPES), f"missing {set(BUILTIN_TYPES) - set(seen)} after 90 s"
    for event_type, env in seen.items():
        jsonschema.validate(env, schema_for(event_type, config))
    assert attack is not None
    assert attack["header"]["type"] == "ALERT"
    assert attack["header"]["subtype"] == "PASSWORD_ATTACK"
    assert attack["body"]["count"] >= 5
    assert {f"192.0.2.{i}" for i in range(1, 6)} <= set(attack["body"]["addrs"])
    assert len(attack["body"]["evidence"]) >= 5

    status, health = _get(f"{base}/api/v1/health")
    assert status == 200, health
    # authentication is on in the demo too: stats for the first start's admin token only
    assert _get(f"{base}/api/v1/stats")[0] == 401
    auth = auth_headers(Path(config.node.data_dir))
    status, stats = _get(f"{base}/api/v1/stats", auth)
    assert status == 200
    assert stats["stages"]["decode"]["received"] > 0
    metrics = urllib.request.Request(f"{base}/metrics", headers=auth)
    with urllib.request.urlopen(metrics, timeout=5) as resp:
        assert b"logfactory_stage_records_total" in resp.read()

    # the CLI subscriber, as the README shows it
    out = subprocess.run(
        [sys.executable, "-m", "logfactory", "subscribe", "--types", "ALERT,JOB_STATUS",
         "--from", "earliest", "--count", "3", "-c", str(config_path)],
        capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    lines = out.stdout.decode().splitlines()
    assert len(lines) == 3
    assert all(json.loads(line)["header"]["type"] in {"ALERT", "JOB_STATUS"} for line in lines)

    assert node.stop() == 0
    assert "stopped cleanly" in node.output()
