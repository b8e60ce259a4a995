"""A file source whose globs match nothing is said on the health page until a file appears: a
warning while another source can collect, a problem when nothing can."""

from __future__ import annotations

import time
from pathlib import Path

from tests.helpers.agent import AgentRunner, Reader, write
from tests.helpers.clients import api_client
from tests.helpers.configs import source_as
from tests.helpers.waiting import wait_for

from logfactory.access import Role
from logfactory.access.store import AccessStore
from logfactory.api import NodeContext
from logfactory.bus.local import LocalBus
from logfactory.collect.sources.context import SourceContext
from logfactory.collect.sources.file import FileSource
from logfactory.config import Config, FileSourceConfig, NodeConfig, SourceConfig, source_config
from logfactory.stats import StatsRegistry


def config(tmp_path: Path, *sources: SourceConfig) -> Config:
    return Config(node=NodeConfig(data_dir=str(tmp_path / "data")), sources=list(sources))


def secure(logs: Path) -> FileSourceConfig:
    return source_as(FileSourceConfig, type="file", name="secure", paths=[str(logs / "secure*")])


SYSLOG = source_config(type="syslog", name="net", listen="127.0.0.1:0")


def test_no_match_is_a_warning_while_another_source_works_and_clears_once_a_file_appears(
    tmp_path: Path, logs: Path, bus: LocalBus
) -> None:
    agent = AgentRunner(config(tmp_path, secure(logs), SYSLOG), bus).start()
    try:
        glob = str(logs / "secure*")
        # known at the first scan, before the agent reports ready: the node's banner says it
        assert agent.agent.idle_reasons() == {
            "secure": f"file source 'secure': no file matches {glob}"
        }
        problems = agent.registry.problems()
        assert problems == {
            "warning:source:secure:idle": f"file source 'secure': no file matches {glob}"
        }
        # what a source reports itself (an SQL or Kafka source's outage) is not the agent's
        agent.registry.problem("source:secure", "its own problem")
        write(logs / "secure", "Dec  6 01:40:20 login01 sshd[1]: hello\n")
        Reader(bus).wait_count(1)
        wait_for(
            lambda: "warning:source:secure:idle" not in agent.registry.problems(), 10,
            "the warning to clear",
        )  # fmt: skip
        assert agent.agent.idle_reasons() == {}
        assert agent.registry.problems() == {"source:secure": "its own problem"}
    finally:
        agent.stop()


def test_no_match_is_a_problem_when_no_source_has_anything_to_read(
    tmp_path: Path, logs: Path, bus: LocalBus
) -> None:
    agent = AgentRunner(config(tmp_path, secure(logs)), bus).start()
    try:
        problem = agent.registry.problems()["source:secure:idle"]
        assert problem.startswith("file source 'secure': no file matches")
        assert problem.endswith("no source of this node has anything to read")
    finally:
        agent.stop()


def test_why_a_source_reads_nothing(tmp_path: Path, logs: Path) -> None:
    src = FileSource(secure(logs), SourceContext(tmp_path))
    src._rescan()
    assert src.idle_reason == f"file source 'secure': no file matches {logs / 'secure*'}"
    write(logs / "secure-1.gz", b"\x1f\x8b")
    src._rescan()
    assert src.idle_reason is not None
    assert "only .gz files match" in src.idle_reason
    assert "read_gzip: true" in src.idle_reason
    write(logs / "secure", "x\n")
    src._rescan()
    assert src.idle_reason is None


def test_health_lists_warnings_apart_and_stays_ok(tmp_path: Path, local_bus: LocalBus) -> None:
    registry = StatsRegistry("node")
    text = "file source 'secure': no file matches /var/log/secure"
    registry.warning("source:secure:idle", text)
    producer = local_bus.producer()
    ctx = NodeContext(
        config=Config(), bus=local_bus, producer=producer, registry=registry,
        stats_dir=tmp_path / "stats", started=time.time(),
        access=AccessStore.in_dir(tmp_path / "access"),
    )  # fmt: skip
    try:
        with api_client(ctx, role=Role.VIEWER) as client:
            r = client.get("/api/v1/health")
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["status"] == "ok"
            assert "problems" not in body
            assert body["warnings"] == [f"node: {text}"]
            stats = client.get("/api/v1/stats").json()
            assert stats["processes"][0]["problems"] == {"warning:source:secure:idle": text}
            registry.problem("bus", "unreachable")  # a real problem still degrades
            assert client.get("/api/v1/health").status_code == 503
    finally:
        producer.close()
