"""The source registry (issue 14, item 5): every source type the configuration offers is built
in one place, the same way, from its struct and one :class:`SourceContext`.

Why: a type added to the config's tagged union without a builder would load, pass ``check`` and
then be silently skipped by the agent; and a constructor that grew its own argument list would
bring back a call site per type. These tests fail on either, and show that what the context
carries (name, data directory, registry, host, node settings, the bus read-back) reaches the
sources that use it.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from logfactory.bus.base import Producer
from logfactory.collect.agent import Agent
from logfactory.collect.sources.base import Source
from logfactory.collect.sources.build import (
    AGENT_TYPES,
    SERVED_ELSEWHERE,
    SOURCE_BUILDERS,
    build_source,
    source_builder,
)
from logfactory.collect.sources.context import SourceContext
from logfactory.collect.sources.file import FileSource
from logfactory.collect.sources.file_reconcile import RawLog
from logfactory.collect.sources.sql import SqlSource
from logfactory.collect.sources.syslog import SyslogSource
from logfactory.config import SOURCE_TYPES, Config, NodeConfig, SourceConfig, source_config
from logfactory.record import Record
from logfactory.stats import StatsRegistry

# the smallest valid entry of each type with a builder; building one opens nothing
EXAMPLES: dict[str, dict[str, Any]] = {
    "file": {"paths": ["{tmp}/logs/*.log"]},
    "syslog": {"listen": "127.0.0.1:0"},
    "raw": {"listen": "127.0.0.1:0"},
    "relp": {"listen": "127.0.0.1:0"},
    "snmp": {"listen": "127.0.0.1:0"},
    "sql": {
        "connection": "sqlite:///{tmp}/x.db",
        "query": "SELECT id FROM t WHERE id > ?",
        "tracking_column": "id",
    },
    "kafka": {"kafka": {"bootstrap.servers": "127.0.0.1:1"}, "topics": ["t"]},
    "demo": {"rate": 10},
}


def example(source_type: str, tmp_path: Path, **keys: Any) -> SourceConfig:
    """The example of ``source_type`` under ``tmp_path``, with ``keys`` changed."""
    settings = {**EXAMPLES[source_type], **keys}
    if source_type == "file":
        settings["paths"] = [p.format(tmp=tmp_path) for p in settings["paths"]]
    if source_type == "sql":
        settings["connection"] = settings["connection"].format(tmp=tmp_path)
    return source_config(type=source_type, **settings)


def test_every_source_type_of_the_config_has_a_builder_or_is_served_elsewhere() -> None:
    assert set(SOURCE_BUILDERS).isdisjoint(SERVED_ELSEWHERE)
    assert set(SOURCE_BUILDERS) | set(SERVED_ELSEWHERE) == set(SOURCE_TYPES)
    assert set(EXAMPLES) == set(SOURCE_BUILDERS)  # so the next test covers every builder
    assert set(SOURCE_BUILDERS) - {"demo"} == AGENT_TYPES  # the node adds the demo feed


@pytest.mark.parametrize("source_type", sorted(SOURCE_BUILDERS))
def test_every_source_type_builds_from_its_struct_and_a_source_context(
    source_type: str, tmp_path: Path
) -> None:
    cls = source_builder(source_type)
    params = list(inspect.signature(cls).parameters.values())
    positional = [p.name for p in params if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    assert positional == ["config", "ctx"]
    # anything else is a tuning knob with a default, never a second way to hand over the node
    assert all(p.default is not inspect.Parameter.empty for p in params[2:])
    registry = StatsRegistry("t")
    ctx = SourceContext(tmp_path / "data", registry, "collector1", name=f"my-{source_type}")
    src = build_source(example(source_type, tmp_path), ctx)
    assert type(src) is cls
    assert isinstance(src, Source)
    assert src.name == f"my-{source_type}"


def test_without_a_name_in_the_context_the_config_names_the_source(tmp_path: Path) -> None:
    ctx = SourceContext(tmp_path)
    assert build_source(example("relp", tmp_path, name="edge"), ctx).name == "edge"
    assert build_source(example("relp", tmp_path), ctx).name == "relp"


def test_an_unknown_source_type_is_refused() -> None:
    with pytest.raises(ValueError, match="'carrier-pigeon' is not supported"):
        source_builder("carrier-pigeon")


def test_the_context_reaches_what_the_sources_keep(tmp_path: Path) -> None:
    """Data directory, collecting host and name decide where positions live and which host a
    record without one gets; the node's time zone drives the demo feed's syslog times."""
    ctx = SourceContext(tmp_path / "d", hostname="collector1", node=NodeConfig(timezone="UTC"))
    file_src = build_source(example("file", tmp_path), ctx.named("app"))
    assert isinstance(file_src, FileSource)
    assert file_src.positions_path == tmp_path / "d" / "collect" / "app.positions.json"
    assert file_src.hostname == "collector1"
    sql = build_source(example("sql", tmp_path, connection="DSN=site"), ctx.named("db"))
    assert isinstance(sql, SqlSource)
    assert sql.state_path == tmp_path / "d" / "collect" / "db.sql.json"
    with pytest.raises(Exception, match="Mars"):  # the zone is read at construction
        build_source(
            example("demo", tmp_path), SourceContext(tmp_path, node=NodeConfig(timezone="Mars/X"))
        )


class _NoProducer:
    """The agent only keeps its producer until it runs; nothing here runs it."""

    def produce(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        raise AssertionError("not produced to in this test")

    def flush(self, timeout: float | None = None) -> None:
        raise AssertionError("not flushed in this test")

    def close(self) -> None:
        return None


class _RawLog:
    def marks(self) -> dict[int, int]:
        return {}

    def since(self, marks: dict[int, int]) -> Iterator[Record]:
        return iter(())


def test_the_agent_builds_every_source_from_one_context(tmp_path: Path) -> None:
    """Names are made unique per agent; registry, host, data directory and the bus read-back
    are the agent's own, handed over in the context."""
    file_cfg = example("file", tmp_path, name="app")
    config = Config(
        node=NodeConfig(data_dir=str(tmp_path / "data")),
        sources=[file_cfg, file_cfg, example("syslog", tmp_path), example("demo", tmp_path)],
    )
    registry = StatsRegistry("t")
    raw_log: RawLog = _RawLog()
    producer: Producer = _NoProducer()
    agent = Agent(config, producer, registry, raw_log=raw_log, hostname="collector1")
    assert [s.name for s in agent.sources] == ["app", "app-2", "syslog"]  # demo: the node's
    assert sorted(agent.by_index) == [0, 1, 2]
    files = [s for s in agent.sources if isinstance(s, FileSource)]
    assert [f.positions_path.name for f in files] == ["app.positions.json", "app-2.positions.json"]
    assert all(f.raw_log is raw_log and f.hostname == "collector1" for f in files)
    assert all(f.positions_path.parent == tmp_path / "data" / "collect" for f in files)
    assert agent.raw_log is raw_log  # a source reconciles: the agent reads logs.raw back
    syslog = agent.sources[2]
    assert isinstance(syslog, SyslogSource)
    syslog.reject("bad frame", "10.0.0.1:5")
    assert registry.snapshot()["counters"]["source:syslog"]["rejected"] == 1
