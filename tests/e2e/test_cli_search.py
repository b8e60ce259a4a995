"""``logfactory search``, ``top`` and ``histogram`` against a real node (``logfactory run``
with the store role, records posted to its HTTP ingest, parsed by the factory and stored):
what each prints is checked against what was ingested, ``--follow`` sees a record ingested
after it started and ends with status 0 on SIGINT, and a bad query or a missing node is one
clear message."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from tests.helpers.nodes import NodeProcess, auth_headers, demo_config, up
from tests.helpers.ports import free_port
from tests.helpers.waiting import wait_for

from logfactory import cli_search
from logfactory.cli import cli

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

NO_ENV = {"LOGFACTORY_URL": None, "LOGFACTORY_TOKEN": None, "LOGFACTORY_CONFIG": None}
# (host, syslog severity number, store's name, count): 30 records of one probe word
MIX = [("cn01", 3, "error", 12), ("cn02", 4, "warning", 10), ("cn03", 6, "info", 8)]
PROBES = sum(n for *_, n in MIX)
# the logs only: a new template's NEW_PATTERN event quotes the probe's words too
PROBE_LOGS = "kind:log AND clisearch"


@dataclass
class Node:
    config: Path
    port: int
    data: Path
    process: NodeProcess

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _without_demo_feed(text: str) -> str:
    """The demo configuration without its generator: only what a test ingests is stored."""
    return re.sub(r"\n  - type: demo\n(    .*\n)+", "\n", text)


def _start(tmp: Path) -> Node:
    config, _syslog, port = demo_config(tmp)
    config.write_text(_without_demo_feed(config.read_text()))
    log = tmp / "node.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "logfactory", "run", "-c", str(config), "--quiet"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp,
        )  # fmt: skip
    node = Node(config, port, tmp / "data", NodeProcess(proc, log))
    try:
        up(node.process, port)
    except BaseException:
        node.process.stop()
        raise
    return node


def _syslog_line(host: str, severity: int, text: str, when: datetime) -> str:
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"<{8 + severity}>1 {stamp} {host} sshd 4121 - - {text}"


def _ingest(node: Node, lines: list[str]) -> None:
    request = urllib.request.Request(
        f"{node.url}/api/v1/ingest?source=syslog",
        data="\n".join(lines).encode(),
        headers={"Content-Type": "text/plain", **auth_headers(node.data)},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200


def _stored(node: Node, query: str) -> int:
    """How many records the node's search API finds for ``query`` (0 while it cannot say)."""
    time.sleep(0.2)  # pace: the node answers a credential 10 queries a second
    url = f"{node.url}/api/v1/search?" + urllib.parse.urlencode({"q": query, "limit": 1})
    request = urllib.request.Request(url, headers=auth_headers(node.data))
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(json.loads(answer.read())["total"] or 0)
    except OSError:
        return 0


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    started = _start(tmp_path_factory.mktemp("cli-search"))
    try:
        now = datetime.now(UTC)
        lines: list[str] = []
        for host, severity, _name, count in MIX:
            for n in range(count):
                when = now - timedelta(seconds=len(lines) * 7)
                lines.append(_syslog_line(host, severity, f"clisearch probe {host} n{n}", when))
        _ingest(started, lines)
        wait_for(lambda: _stored(started, PROBE_LOGS) == PROBES, 90, "the probes stored")
        yield started
    finally:
        started.process.stop()


def _cli(node: Node, *args: str, env: dict[str, str | None] | None = None) -> Result:
    """The command in-process (click's runner: stdout is not a terminal) against the node."""
    return CliRunner().invoke(cli, [*args, "-c", str(node.config)], env={**NO_ENV, **(env or {})})


def _ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def test_search_prints_json_lines_newest_first_when_piped(node: Node) -> None:
    result = _ok(_cli(node, "search", PROBE_LOGS, "--since", "1h"))
    hits = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(hits) == PROBES
    times = [h["time"] for h in hits]
    assert times == sorted(times, reverse=True)
    by_host = {h: sum(1 for x in hits if x["host"] == h) for h, *_ in MIX}
    assert by_host == {h: n for h, _s, _name, n in MIX}
    assert {h["severity"] for h in hits if h["host"] == "cn01"} == {"error"}
    assert all("clisearch probe" in h["message"] for h in hits)


def test_search_pages_through_cursors_up_to_the_limit(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    everything = [json.loads(x) for x in _ok(_cli(node, "search", PROBE_LOGS)).stdout.splitlines()]
    monkeypatch.setattr(cli_search, "_PAGE", 4)  # 4 hits a request: the 25 take 7 pages
    paged = [json.loads(x) for x in _ok(_cli(node, "search", PROBE_LOGS, "--limit", "25"))
             .stdout.splitlines()]  # fmt: skip
    assert [h["id"] for h in paged] == [h["id"] for h in everything[:25]]


def test_search_as_a_table_in_local_time_with_a_footer(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # 5 h 30 from UTC: a UTC time cannot pass
    time.tzset()
    try:
        result = _ok(_cli(node, "search", "kind:log AND host:cn02", "--format", "table",
                          env={"COLUMNS": "90", "NO_COLOR": "1"}))  # fmt: skip
    finally:
        monkeypatch.undo()
        time.tzset()
    lines = result.stdout.splitlines()
    assert lines[0].split()[:5] == ["time", "host", "severity", "kind", "source"]
    assert len(lines) == 1 + 10
    assert all(len(line) <= 90 for line in lines)
    assert "\x1b[" not in result.stdout
    first = json.loads(_ok(_cli(node, "search", "kind:log AND host:cn02", "--limit", "1")).stdout)
    utc = datetime.fromisoformat(first["time"])
    local = (utc + timedelta(hours=5, minutes=30)).strftime("%Y-%m-%d %H:%M:%S.")
    assert lines[1].startswith(local)
    assert "warning" in lines[1]
    assert "clisearch probe cn02" in lines[1]
    assert re.fullmatch(r"10 of 10 matches \(\d+\.\d{3} s\)", result.stderr.strip())


def test_search_as_csv_with_chosen_fields(node: Node) -> None:
    result = _ok(_cli(node, "search", "kind:log AND host:cn03", "--format", "csv",
                      "--fields", "host,message,fields.program"))  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 8
    assert set(rows[0]) == {"id", "host", "message", "fields.program"}
    assert {r["host"] for r in rows} == {"cn03"}
    assert {r["fields.program"] for r in rows} == {"sshd"}


def test_top_counts_values_with_their_share(node: Node) -> None:
    piped = _ok(_cli(node, "top", "host", PROBE_LOGS, "--since", "1h"))
    counted = [json.loads(x) for x in piped.stdout.splitlines()]
    assert [(b["key"], b["count"]) for b in counted] == [("cn01", 12), ("cn02", 10), ("cn03", 8)]
    table = _ok(_cli(node, "top", "severity", PROBE_LOGS, "--format", "table",
                     env={"COLUMNS": "80"}))  # fmt: skip
    rows = table.stdout.splitlines()
    assert rows[0].split() == ["value", "count", "share"]
    assert rows[1].split()[:3] == ["error", "12", "40.0%"]
    assert rows[1].count("█") > rows[3].count("█") > 0
    assert "top 3 values of severity" in table.stderr


def test_histogram_counts_every_match_in_local_time_buckets(node: Node) -> None:
    piped = _ok(_cli(node, "histogram", PROBE_LOGS, "--since", "1h", "--interval", "1m"))
    buckets = [json.loads(x) for x in piped.stdout.splitlines()]
    assert sum(b["count"] for b in buckets) == PROBES
    assert 60 <= len(buckets) <= 62  # one bucket a minute over the hour (ends rounded)
    table = _ok(_cli(node, "histogram", PROBE_LOGS, "--since", "1h", "--format", "table",
                     env={"COLUMNS": "100"}))  # fmt: skip
    bars = table.stdout.splitlines()
    assert all(len(line) <= 100 for line in bars)
    assert max(len(line) for line in bars) == 100  # the largest bucket fills the width
    assert f"{PROBES} matches in" in table.stderr


def test_a_bad_query_shows_its_column_and_exits_2(node: Node) -> None:
    result = _cli(node, "search", "host:cn01 AND (probe")
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert lines[0] == "  host:cn01 AND (probe"
    assert lines[1].strip() == "^"
    assert lines[2].startswith("Error: ")
    assert "Traceback" not in result.output


def test_no_node_is_the_message_the_other_api_commands_give(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(cli, ["search", "x", "--url", url, "--token", "t"], env=NO_ENV)
    assert result.exit_code == 1
    assert f"no node answers at {url} (connection refused)" in result.stderr


def test_a_store_that_cannot_answer_is_one_line(tmp_path: Path) -> None:
    not_a_store = tmp_path / "store-file"
    not_a_store.write_text("this is no store\n")
    port = free_port()
    config = tmp_path / "serve.yaml"
    config.write_text(
        f"node: {{name: nostore, data_dir: {tmp_path / 'data'}}}\n"
        f"http: {{listen: '127.0.0.1:{port}'}}\n"
        f"store: {{path: '{not_a_store}'}}\n"
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "logfactory", "serve", "-c", str(config), "--quiet"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path,
        )  # fmt: skip
    serving = NodeProcess(proc, log)
    try:
        up(serving, port)
        for args in (["search", "x"], ["top", "host"], ["histogram"]):
            result = CliRunner().invoke(cli, [*args, "-c", str(config)], env=NO_ENV)
            assert result.exit_code == 1, result.output
            assert result.stderr.startswith("Error: the store is not available: "), result.stderr
            assert result.stdout == ""
    finally:
        serving.stop()


def test_follow_prints_what_is_stored_after_it_started_and_stops_on_sigint(node: Node) -> None:
    env = {k: v for k, v in os.environ.items() if k not in NO_ENV}
    follower = subprocess.Popen(
        [sys.executable, "-m", "logfactory", "search", "kind:log AND followprobe", "--follow",
         "--format", "json", "-c", str(node.config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    seen: list[dict[str, Any]] = []
    reader = threading.Thread(
        target=lambda: seen.extend(json.loads(line) for line in follower.stdout or []),
        daemon=True,
    )
    reader.start()
    try:
        _ingest(node, [_syslog_line("cn04", 3, "followprobe first", datetime.now(UTC))])
        wait_for(lambda: len(seen) == 1, 60, "the first record followed")
        _ingest(node, [_syslog_line("cn04", 3, "followprobe second", datetime.now(UTC))])
        wait_for(lambda: len(seen) == 2, 60, "the second record followed")
        assert [h["message"] for h in seen] == ["followprobe first", "followprobe second"]
        follower.send_signal(signal.SIGINT)
        assert follower.wait(timeout=30) == 0
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
        reader.join(timeout=10)
        stderr = follower.stderr.read() if follower.stderr else ""
        for pipe in (follower.stdout, follower.stderr):
            if pipe is not None:
                pipe.close()
    assert "Traceback" not in stderr, stderr
    assert "Aborted" not in stderr, stderr
    assert len(seen) == 2  # each once: the polls' overlapping windows showed nothing twice
