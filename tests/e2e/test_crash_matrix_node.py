"""Crash matrix, whole node: SIGKILL the process group of ``logfactory run`` (HTTP ingest,
bus writer and factory child together) twice while stateful traffic flows in over HTTP,
restart it, and compare every output topic with the independent model.

Why: the node's promise at intake is that an HTTP batch answered 200 is durable, and the
factory's that what is durable comes out exactly once, with multi-line records, windows,
template announcements and dead letters carried over a crash of everything at once. The
client here behaves as the docs tell one to (docs/sources/file-http.md): a batch without a
200 is sent again once the node is back. So records of an answered batch must come out
exactly once; records of the batch in flight at a kill at least once, and at most twice
(the model treats their units, and the windows they hit, as "loose").
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import os
import signal
import subprocess
import threading
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.crash_traffic import (
    Line,
    check,
    config_yaml,
    generate,
    live_state,
    read_outputs,
    settle,
)
from tests.helpers.nodes import auth_headers
from tests.helpers.ports import free_port
from tests.helpers.waiting import wait_for

from logfactory.bus.local import LocalBus
from logfactory.topics import RAW

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

LINES = 12_000
BATCH = 400  # lines per POST


def _post(
    url: str, lines: list[Line], auth: dict[str, str], sent: threading.Event | None = None
) -> int:
    """POST ``lines`` as NDJSON with the credential ``auth``; the status, or 0 when no answer
    came. ``sent`` is set once the whole request is on the wire (the node is then working on
    it)."""
    body = "\n".join(
        json.dumps({"line": line.payload, "host": line.host, "source": line.source})
        for line in lines
    ).encode()
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
    try:
        conn.request("POST", parts.path, body, {"Content-Type": "application/x-ndjson", **auth})
        if sent is not None:
            sent.set()
        return int(conn.getresponse().status)
    except OSError:  # refused, reset, or cut by the kill
        return 0
    finally:
        if sent is not None:
            sent.set()
        conn.close()


def _post_until_ok(
    url: str, lines: list[Line], auth: dict[str, str], timeout: float = 120.0
) -> None:
    """Send the batch again until it is answered 200 (a client without a 200 retries)."""
    status: list[int] = []

    def ok() -> bool:
        status.append(_post(url, lines, auth))
        return status[-1] == 200

    wait_for(ok, timeout, f"a 200 for a batch (last answers {status[-3:]})")


def _family(pid: int) -> list[int]:
    """``pid`` and all its descendants (the node's bus writer and factory child run in
    sessions of their own, so killing the node's process group would not reach them)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo += children.get(current, [])
    return out


def _kill_node(proc: subprocess.Popen[bytes]) -> int:
    """SIGKILL the node, its bus writer and its factory child at once; how many died."""
    family = _family(proc.pid)
    for pid in family:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()
    for pid in family[1:]:  # not our children: wait until the kernel has them gone
        wait_for(functools.partial(_gone, pid), 30, f"{pid} gone")
    return len(family)


def _gone(pid: int) -> bool:
    """Ended: no such process, or a zombie waiting for init to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _committed(data: Path) -> int:
    bus = LocalBus(data / "bus")
    try:
        return sum(bus.committed("factory", RAW).values())
    finally:
        bus.close()


def _raw_count(data: Path) -> int:
    bus = LocalBus(data / "bus")
    try:
        return sum(hi for _lo, hi in bus.watermarks(RAW).values())
    finally:
        bus.close()


def test_node_sigkill_with_traffic_over_http(tmp_path: Path, start_node: Any) -> None:
    start: Callable[..., Any] = start_node
    port = free_port()
    extra = (
        f"http: {{listen: 127.0.0.1:{port}}}\n"
        "sources:\n  - {type: http, name: ingest, tag: syslog}\n"
    )
    data = tmp_path / "data"
    path = tmp_path / "node.yaml"
    # no bus messages that are not records (only a writer of logs.raw can make those) and no
    # invalid UTF-8 (NDJSON cannot carry it); every other kind of unit and state is there
    path.write_text(config_yaml(str(data), extra=extra))
    traffic = generate(LINES, seed=5, garbage=False, invalid_utf8=False)
    lines = traffic.lines
    batches = [lines[i : i + BATCH] for i in range(0, len(lines), BATCH)]
    # the batches a kill lands in are ten times larger: more time in flight
    for at in (2 * len(batches) // 3, len(batches) // 3):
        batches[at : at + 10] = [[line for batch in batches[at : at + 10] for line in batch]]
    url = f"http://127.0.0.1:{port}/api/v1/ingest"
    kills = {len(batches) // 3, 2 * len(batches) // 3}
    loose: set[int] = set()
    in_flight: list[tuple[int, int]] = []  # (held lines, window keys) at each kill

    node = start(path)
    auth = auth_headers(data)  # the first start's admin token, valid across the restarts
    for index, batch in enumerate(batches):
        if index not in kills:
            _post_until_ok(url, batch, auth)  # the first after a start also waits for the node
            continue
        # the factory has state built (it read most of the input so far), then the kill
        # lands while this batch is in flight (or just answered)
        before = _raw_count(data)
        wait_for(lambda: _committed(data) >= before * 0.9, 60, "the factory at work")  # noqa: B023
        answers: list[int] = []
        sent = threading.Event()
        sender = threading.Thread(
            target=lambda: answers.append(_post(url, batch, auth, sent))  # noqa: B023 (joined)
        )
        sender.start()
        assert sent.wait(60), "the batch could not be sent"
        assert _kill_node(node.proc) >= 3, "node, bus writer and factory child"
        bus = LocalBus(data / "bus")
        try:
            in_flight.append(live_state(bus))
        finally:
            bus.close()
        sender.join(timeout=90)
        assert not sender.is_alive()
        node = start(path)
        if answers != [200]:  # not acknowledged: sent again, so at least once
            loose.update(line.unit for line in batch)
            _post_until_ok(url, batch, auth)
    total = _raw_count(data)
    bus = LocalBus(data / "bus")
    try:
        waited = settle(bus, "factory", total, 180)
        assert waited is None, f"{waited}\n{node.output()[-3000:]}"
        assert node.stop() == 0
        outputs = read_outputs(bus)
    finally:
        bus.close()
    # the kills landed with state in flight: windows open or suppressed each time, and
    # multi-line records held at one kill at least
    assert all(windows > 0 for _held, windows in in_flight), in_flight
    assert any(held > 0 for held, _windows in in_flight), in_flight
    problems = check(outputs, traffic.expected, frozenset(loose))
    assert not problems, "\n".join(problems)
    assert total >= len(lines), "every line reached logs.raw"
