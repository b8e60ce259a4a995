"""What a user can get wrong when starting a node ends in one line that says what and where,
never a traceback: a port in use, a second node on the data directory, a configuration that
cannot work; and a file source that follows nothing is said at start and on the health page."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.helpers.nodes import NodeProcess, demo_config, ended, health, up
from tests.helpers.ports import free_port, free_port_both
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.e2e

Start = Callable[..., NodeProcess]


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


@pytest.mark.parametrize("which", ["http", "syslog"])
def test_a_port_in_use_names_the_address_the_config_line_and_another_node(
    tmp_path: Path, start_node: Start, which: str
) -> None:
    config, syslog_port, http_port = demo_config(tmp_path, rate=1)
    port = http_port if which == "http" else syslog_port
    with socket.socket() as holder:  # another program (or node) listening on the port
        holder.bind(("127.0.0.1", port))
        holder.listen()
        status, out = ended(start_node(config))
    key = "http.listen" if which == "http" else "sources[0].listen"
    line = line_of(config, f"127.0.0.1:{port}")
    assert status == 1, out
    assert f"Error: {config}:{line}: {key}: cannot listen on tcp 127.0.0.1:{port}" in out
    assert "already in use" in out
    assert "Another logfactory node may be running" in out
    assert "Traceback" not in out


def test_a_second_node_on_the_same_data_directory_is_refused_at_once(
    tmp_path: Path, start_node: Start
) -> None:
    config, syslog_port, http_port = demo_config(tmp_path, rate=1)
    first = start_node(config)
    up(first, http_port)
    api_port = free_port()
    second = tmp_path / "second.yaml"  # other ports, the same data directory
    second.write_text(
        config.read_text()
        .replace(f"127.0.0.1:{http_port}", f"127.0.0.1:{api_port}")
        .replace(f"127.0.0.1:{syslog_port}", f"127.0.0.1:{free_port_both()}")
    )
    for role in ("run", "collect"):
        status, out = ended(start_node(second, role=role))
        assert status == 1, out
        assert f"another node already runs on the data directory {tmp_path / 'data'}" in out
        assert f"pid {first.proc.pid} (logfactory run -c {config})" in out
        assert "Traceback" not in out
    # `serve` (the API alone) shares the directory with the collecting node by design
    serve = start_node(second, role="serve")
    up(serve, api_port)
    assert serve.stop() == 0
    assert first.proc.poll() is None
    assert first.stop() == 0


def test_configurations_that_cannot_work_exit_2(tmp_path: Path, start_node: Start) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("node:\n  data_dir: x\nsourcez: []\n")
    status, out = ended(start_node(bad))
    assert status == 2, out
    assert f"Error: {bad}:" in out, out
    assert "sourcez" in out, out
    assert "Traceback" not in out
    empty = tmp_path / "empty.yaml"
    empty.write_text(f"node: {{data_dir: {tmp_path / 'data'}}}\n")
    status, out = ended(start_node(empty, role="collect"))
    assert status == 2, out
    assert "`logfactory collect` has nothing to do" in out, out


def test_a_file_source_following_nothing_is_said_at_start_and_in_health(
    tmp_path: Path, start_node: Start
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    http_port, syslog_port = free_port(), free_port_both()
    config = tmp_path / "files.yaml"
    config.write_text(
        f"node: {{data_dir: {tmp_path / 'data'}}}\n"
        f"http: {{listen: 127.0.0.1:{http_port}}}\n"
        "sources:\n"
        f"  - {{type: file, name: secure, paths: ['{logs}/secure']}}\n"
        f"  - {{type: syslog, name: net, listen: '127.0.0.1:{syslog_port}', protocols: [udp]}}\n"
    )
    node = start_node(config, "--no-factory")
    up(node, http_port)
    out = node.output()
    assert f"source      secure (file): {logs}/secure\n" in out
    assert f"warning     file source 'secure': no file matches {logs}/secure\n" in out
    assert f"source      net (syslog): udp 127.0.0.1:{syslog_port}\n" in out
    status, body = health(http_port)
    assert status == 200, body  # the syslog source can collect
    assert body["status"] == "ok", body
    assert body["warnings"] == [f"node: file source 'secure': no file matches {logs}/secure"]
    (logs / "secure").write_text("Dec  6 01:40:20 login01 sshd[1]: hello\n")
    wait_for(lambda: "warnings" not in health(http_port)[1], 30, "the warning to clear")
    assert node.stop() == 0
