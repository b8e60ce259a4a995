"""One place that turns a ``sources:`` entry into its collector.

Why a table of lazy imports: a source type may need a library or a system package that a node
without such a source should not have to load (pyodbc needs unixODBC's ``libodbc``), so each
module is imported only when a configured source asks for it.
"""

from __future__ import annotations

from pathlib import Path

from logfactory.collect.sources.base import Source
from logfactory.config import SourceConfig
from logfactory.stats import StatsRegistry

__all__ = ["AGENT_TYPES", "build_source"]

# types the agent runs; ``http`` is served by the API, ``demo`` is added by the node
AGENT_TYPES = frozenset({"file", "syslog", "raw", "relp", "snmp", "sql", "kafka"})


def build_source(
    sc: SourceConfig, *, name: str, data_dir: Path, registry: StatsRegistry, hostname: str
) -> Source:
    """The source for ``sc`` (whose type is in :data:`AGENT_TYPES`)."""
    if sc.type == "file":
        from logfactory.collect.sources.file import FileSource

        return FileSource(sc, data_dir=data_dir, name=name, hostname=hostname)
    if sc.type == "syslog":
        from logfactory.collect.sources.syslog import SyslogSource

        return SyslogSource(sc, name=name, registry=registry, data_dir=data_dir, hostname=hostname)
    if sc.type == "raw":
        from logfactory.collect.sources.raw import RawSource

        return RawSource(sc, name=name, registry=registry, data_dir=data_dir, hostname=hostname)
    if sc.type == "relp":
        from logfactory.collect.sources.relp import RelpSource

        return RelpSource(sc, name=name, registry=registry)
    if sc.type == "sql":
        from logfactory.collect.sources.sql import SqlSource

        return SqlSource(sc, name=name, registry=registry, data_dir=data_dir, hostname=hostname)
    if sc.type == "kafka":
        from logfactory.collect.sources.kafka_input import KafkaInputSource

        return KafkaInputSource(
            sc, name=name, registry=registry, data_dir=data_dir, hostname=hostname
        )
    if sc.type == "snmp":
        from logfactory.collect.sources.snmp import SnmpSource

        return SnmpSource(sc, name=name, registry=registry, data_dir=data_dir)
    raise ValueError(f"source type {sc.type!r} is not supported by the collector")
