"""The one YAML configuration file: typed, strict, and precise about mistakes.

Config types are frozen ``msgspec`` structs that reject unknown keys; runtime objects are built
from them (habit 1 of DESIGN.md). Every error names the file, the line and what was expected,
because a config mistake found at 3 a.m. must be fixable from the message alone.

The package, by component (each module's structs carry their own checks, ``problems()``):

- :mod:`~logfactory.config.node`: ``node``, ``bus``, ``http``, ``collector``
- :mod:`~logfactory.config.sources`: ``sources``, one struct per ``type`` (a tagged union)
- :mod:`~logfactory.config.snmp`: the SNMPv3 users of an snmp source
- :mod:`~logfactory.config.workshops`: ``workshops``, ``factory``, ``event_types``
- :mod:`~logfactory.config.rules`: ``mappings``, ``alerts``, ``rules``
- :mod:`~logfactory.config.store`: ``store``, the log store and its engine
- :mod:`~logfactory.config.units`: durations and sizes, numbers from the moment of loading
- :mod:`~logfactory.config.model`: :class:`Config`, the whole file
- :mod:`~logfactory.config.loading`: YAML with line numbers, errors as ``FILE:LINE: key: what``
- :mod:`~logfactory.config.checks`: checks across sections (references, names, listeners)
- :mod:`~logfactory.config.fields`: warnings for field names no record carries
- :mod:`~logfactory.config.reference`: the configuration reference, generated from the types

The layer imports nothing of the collectors or the factory.
"""

from __future__ import annotations

from logfactory.config.base import bare_port, key_path
from logfactory.config.loading import load_config, parse_config
from logfactory.config.model import Config
from logfactory.config.node import (
    BusConfig,
    CollectorConfig,
    HttpConfig,
    NodeConfig,
    RetentionConfig,
    ShipConfig,
)
from logfactory.config.rules import AlertRule, FieldMatch, Mapping, Match, ThresholdRule
from logfactory.config.snmp import (
    SNMP_AUTH_PROTOCOLS,
    SNMP_PRIV_PROTOCOLS,
    SnmpV3User,
    snmp_engine_id,
    snmp_protocol,
)
from logfactory.config.sources import (
    SOURCE_TYPES,
    DemoSourceConfig,
    FileSourceConfig,
    HttpSourceConfig,
    KafkaSourceConfig,
    RawSourceConfig,
    RelpSourceConfig,
    SnmpSourceConfig,
    SocketSourceConfig,
    SourceConfig,
    SqlSourceConfig,
    SyslogSourceConfig,
    TcpSourceConfig,
    source_config,
)
from logfactory.config.store import OpenSearchConfig, StoreConfig, StoreRetention
from logfactory.config.units import Duration, Size, parse_duration, parse_size
from logfactory.config.workshops import (
    WORKSHOP_FORMATS,
    EventTypeConfig,
    FactoryConfig,
    MultilineConfig,
    WorkshopConfig,
)
from logfactory.errors import ConfigError

__all__ = [
    "SNMP_AUTH_PROTOCOLS",
    "SNMP_PRIV_PROTOCOLS",
    "SOURCE_TYPES",
    "WORKSHOP_FORMATS",
    "AlertRule",
    "BusConfig",
    "CollectorConfig",
    "Config",
    "ConfigError",
    "DemoSourceConfig",
    "Duration",
    "EventTypeConfig",
    "FactoryConfig",
    "FieldMatch",
    "FileSourceConfig",
    "HttpConfig",
    "HttpSourceConfig",
    "KafkaSourceConfig",
    "Mapping",
    "Match",
    "MultilineConfig",
    "NodeConfig",
    "OpenSearchConfig",
    "RawSourceConfig",
    "RelpSourceConfig",
    "RetentionConfig",
    "ShipConfig",
    "Size",
    "SnmpSourceConfig",
    "SnmpV3User",
    "SocketSourceConfig",
    "SourceConfig",
    "SqlSourceConfig",
    "StoreConfig",
    "StoreRetention",
    "SyslogSourceConfig",
    "TcpSourceConfig",
    "ThresholdRule",
    "WorkshopConfig",
    "bare_port",
    "key_path",
    "load_config",
    "parse_config",
    "parse_duration",
    "parse_size",
    "snmp_engine_id",
    "snmp_protocol",
    "source_config",
]
