"""The node's roles as separate processes on one bus: collect, factory and serve.

This is how a site splits the work (on Kafka, over several hosts); here the three share the
embedded bus, and a line sent by a real syslog peer to the collector still reaches a subscriber
of the API process (with a viewer's token, made through that process's API with the admin token
of its first start).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.nodes import answers, new_token
from tests.helpers.ports import free_port, free_port_both
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.e2e

CONFIG = """
node: {{name: roles, data_dir: {data}, timezone: UTC}}
http: {{listen: 127.0.0.1:{http}}}
sources:
  - {{type: syslog, name: syslog, tag: syslog, listen: 127.0.0.1:{syslog}, protocols: [udp, tcp]}}
workshops:
  syslog: {{format: syslog}}
alerts:
  - name: disk-full
    when: {{workshop: syslog, message: 'No space left on device'}}
    subtype: DISK_FULL
    reason: "a disk of {{host}} is full"
"""


def _start(args: list[str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "logfactory", *args],
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def test_collect_factory_and_serve_as_separate_processes(tmp_path: Path) -> None:
    syslog, http = free_port_both(), free_port()
    config = tmp_path / "roles.yaml"
    config.write_text(CONFIG.format(data=tmp_path / "data", http=http, syslog=syslog))
    procs = [
        _start(["serve", "-c", str(config), "--quiet"], tmp_path, tmp_path / "serve.log"),
        _start(["factory", "-c", str(config)], tmp_path, tmp_path / "factory.log"),
        _start(["collect", "-c", str(config), "--quiet"], tmp_path, tmp_path / "collect.log"),
    ]
    try:
        base = f"http://127.0.0.1:{http}"
        wait_for(lambda: answers(http), 60, "the API process")
        viewer = {"Authorization": f"Bearer {new_token(base, tmp_path / 'data', 'viewer')}"}
        url = f"{base}/api/v1/subscribe?types=ALERT&from=earliest&limit=1&idle=30"
        deadline = time.monotonic() + 30
        sent = False
        while not sent and time.monotonic() < deadline:
            done = subprocess.run(
                ["logger", "--server", "127.0.0.1", "--port", str(syslog), "--tcp",
                 "--rfc3164", "-t", "backup", "write failed: No space left on device"],
                capture_output=True,
            )  # fmt: skip
            sent = done.returncode == 0
            if not sent:
                time.sleep(0.1)  # the collector is still binding its port
        assert sent, "the collector never accepted a TCP connection"
        body = b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and b"event: ALERT" not in body:
            try:
                request = urllib.request.Request(url, headers=viewer)
                with urllib.request.urlopen(request, timeout=35) as resp:
                    body = resp.read()
            except OSError:
                time.sleep(0.1)  # the API process is still starting
        data = [x[6:] for x in body.decode().splitlines() if x.startswith("data: ")]
        assert data, body
        event: dict[str, Any] = json.loads(data[0])
        assert event["header"]["subtype"] == "DISK_FULL"
        assert event["header"]["source"] == "syslog"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            assert proc.wait(timeout=30) == 0
