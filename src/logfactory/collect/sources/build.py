"""The source registry: the one place that turns a ``sources:`` entry into its collector.

Every source type's class is built the same way, ``cls(config, ctx)`` (its configuration struct
and a :class:`~.context.SourceContext`), so the registry is a table from the ``type`` key to
the class. Why a table of module names, imported lazily: a source type may need a library or a
system package that a node without such a source should not have to load (pyodbc needs
unixODBC's ``libodbc``), so each module is imported only when a configured source asks for it.

A new source type is a struct in ``config/sources.py`` and a row here; a test checks that every
type of the configuration's tagged union has one (or is :data:`SERVED_ELSEWHERE`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import cast

from logfactory.collect.sources.base import Source
from logfactory.collect.sources.context import SourceContext
from logfactory.config import SourceConfig

__all__ = [
    "AGENT_TYPES",
    "SERVED_ELSEWHERE",
    "SOURCE_BUILDERS",
    "SourceBuilder",
    "build_source",
    "source_builder",
]

SourceBuilder = Callable[[SourceConfig, SourceContext], Source]

# type -> (module, class); the class takes (its config struct, SourceContext)
SOURCE_BUILDERS: dict[str, tuple[str, str]] = {
    "file": ("logfactory.collect.sources.file", "FileSource"),
    "syslog": ("logfactory.collect.sources.syslog", "SyslogSource"),
    "raw": ("logfactory.collect.sources.raw", "RawSource"),
    "relp": ("logfactory.collect.sources.relp", "RelpSource"),
    "snmp": ("logfactory.collect.sources.snmp", "SnmpSource"),
    "sql": ("logfactory.collect.sources.sql", "SqlSource"),
    "kafka": ("logfactory.collect.sources.kafka_input", "KafkaInputSource"),
    "demo": ("logfactory.collect.sources.demo", "DemoSource"),
}

# types with no collector object: what serves them instead
SERVED_ELSEWHERE: dict[str, str] = {"http": "the HTTP API's ingest route"}

# types the agent runs; ``demo`` is added by the node (it is a feed, not an input)
AGENT_TYPES = frozenset(SOURCE_BUILDERS) - {"demo"}


def source_builder(source_type: str) -> SourceBuilder:
    """The class that builds sources of ``source_type`` (its module imported now)."""
    try:
        module, name = SOURCE_BUILDERS[source_type]
    except KeyError:
        raise ValueError(f"source type {source_type!r} is not supported by the collector") from None
    return cast(SourceBuilder, getattr(importlib.import_module(module), name))


def build_source(sc: SourceConfig, ctx: SourceContext) -> Source:
    """The source for ``sc``, built from ``ctx``."""
    return source_builder(sc.type)(sc, ctx)
