"""What stops a node from starting is said with the configuration line and what to do; one
collecting node per data directory; the banner lists every source with what it follows."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

import pytest

from logfactory.config import Config, load_config, source_config
from logfactory.node_banner import banner_lines, redact_connection
from logfactory.node_start import (
    DataDirLock,
    NodeError,
    bind_api_socket,
    config_line,
    failed_listener,
    listen_error,
)

SITE = """\
node:
  data_dir: {data}
http:
  listen: 127.0.0.1:{port}
sources:
  - type: file
    name: secure
    paths: ["/var/log/secure"]
  - type: syslog
    name: net
    listen: 127.0.0.1:5514
    tls_listen: 127.0.0.1:6514
"""


def site(tmp_path: Path, port: int = 8080) -> Config:
    path = tmp_path / "site.yaml"
    path.write_text(SITE.format(data=tmp_path / "data", port=port))
    return load_config(path)


def test_config_line_finds_keys_and_items_and_none_for_defaults(tmp_path: Path) -> None:
    config = site(tmp_path)
    assert config_line(config.path, ("http", "listen")) == 4
    assert config_line(config.path, ("sources", 1)) == 9
    assert config_line(config.path, ("sources", 1, "tls_listen")) == 12
    assert config_line(config.path, ("sources", 0, "listen")) is None  # not set: a default
    assert config_line(config.path, ("sources", 7, "listen")) is None
    assert config_line(str(tmp_path / "gone.yaml"), ("http",)) is None


def test_a_port_in_use_names_the_address_the_line_and_another_node(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        config = site(tmp_path, port=holder.getsockname()[1])
        with pytest.raises(NodeError) as caught:
            bind_api_socket(config)
    text = str(caught.value)
    assert text.startswith(f"{config.path}:4: http.listen: cannot listen on tcp 127.0.0.1:")
    assert "already in use" in text
    assert "Another logfactory node may be running" in text


def test_other_listen_errors_say_what_to_do(tmp_path: Path) -> None:
    config = site(tmp_path)
    keys = ("sources", 1, "listen")
    denied = listen_error(config, keys, "udp", "0.0.0.0:514", OSError(errno.EACCES, "denied"))
    assert str(denied).startswith(f"{config.path}:11: sources[1].listen: cannot listen on udp")
    assert "below 1024 need root" in str(denied)
    default = listen_error(
        Config(path="x.yaml"), ("http", "listen"), "tcp", "127.0.0.1:8080",
        OSError(errno.EADDRNOTAVAIL, "x"),
    )  # fmt: skip
    assert str(default).startswith("x.yaml: http.listen (not set: the default 127.0.0.1:8080)")
    assert "no network interface" in str(default)


def test_the_listener_that_failed_is_the_first_one_not_opened(tmp_path: Path) -> None:
    sc = site(tmp_path).sources[1]
    assert failed_listener(sc, {}) == ("listen", "udp", "127.0.0.1:5514")
    assert failed_listener(sc, {"udp": ("127.0.0.1", 5514)}) == ("listen", "tcp", "127.0.0.1:5514")
    opened = {"udp": ("127.0.0.1", 5514), "tcp": ("127.0.0.1", 5514)}
    assert failed_listener(sc, opened) == ("tls_listen", "tls", "127.0.0.1:6514")
    snmp = source_config(type="snmp", listen="0.0.0.0:162")
    assert failed_listener(snmp, None) == ("listen", "udp", "0.0.0.0:162")


def test_a_second_collecting_node_on_a_data_directory_is_refused(tmp_path: Path) -> None:
    config = site(tmp_path)
    first = DataDirLock(config, "run").acquire()
    try:
        assert "logfactory run -c" in (config.data_dir / "node.lock").read_text()
        with pytest.raises(NodeError, match="another node already runs on the data directory"):
            DataDirLock(config, "collect").acquire()
    finally:
        first.release()
    DataDirLock(config, "collect").acquire().release()  # free again once the first has gone


def test_the_banner_lists_every_source_with_what_it_follows() -> None:
    sources = [
        source_config(type="file", name="secure", paths=["/var/log/secure", "/var/log/auth*"]),
        source_config(type="syslog", name="net", listen="127.0.0.1:5514"),
        source_config(type="http", name="ingest", token="s3cret"),
        source_config(type="sql", name="jobs", connection="DSN=acct;UID=me;PWD=hunter2"),
        source_config(type="kafka", name="site", topics=["app", "audit"],
                     kafka={"bootstrap.servers": "k1:9092"}),
        source_config(type="demo", name="demo", rate=20),
    ]  # fmt: skip
    config = Config(sources=sources, path="site.yaml")

    class Bound:
        name = "net"

        def addresses(self) -> list[str]:
            return ["syslog udp 127.0.0.1:5514", "syslog tcp 127.0.0.1:5514"]

    rows = banner_lines(
        config, {1: Bound()}, ingest_url="http://127.0.0.1:8080/api/v1/ingest",  # type: ignore[dict-item]
        collectors=True, idle={0: "file source 'secure': no file matches /var/log/secure"},
    )  # fmt: skip
    assert rows == [
        "source      secure (file): /var/log/secure, /var/log/auth*",
        "warning     file source 'secure': no file matches /var/log/secure",
        "source      net (syslog): udp 127.0.0.1:5514, tcp 127.0.0.1:5514",
        "source      ingest (http): POST http://127.0.0.1:8080/api/v1/ingest "
        "(bearer token required)",
        "source      jobs (sql): DSN=acct;UID=me;PWD=***, every 10s",
        "source      site (kafka): topics app, audit on k1:9092",
        "source      demo (demo): 20 lines/s from 8 compute nodes (built-in demo feed)",
    ]
    # `serve` runs no collectors: only what its API serves
    served = banner_lines(config, {}, ingest_url="http://h/api/v1/ingest", collectors=False)
    assert [r.split(":")[0] for r in served] == ["source      ingest (http)"]


def test_a_configuration_without_sources_says_what_the_node_still_does() -> None:
    empty = Config(path="empty.yaml")
    rows = banner_lines(empty, {}, ingest_url="http://h:1/api/v1/ingest", collectors=True)
    assert len(rows) == 1
    assert rows[0].startswith("sources     none in empty.yaml: records come")
    rows = banner_lines(empty, {}, ingest_url=None, collectors=True)
    assert "nothing is collected" in rows[0]


def test_connection_strings_lose_their_secrets() -> None:
    assert redact_connection("postgresql://u:pw@db/x") == "postgresql://u:***@db/x"
    assert redact_connection("sqlite:///var/x.db") == "sqlite:///var/x.db"
    assert redact_connection("Driver=X;Password=a;Server=s") == "Driver=X;Password=***;Server=s"
