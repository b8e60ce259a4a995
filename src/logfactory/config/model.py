"""The whole configuration file: one struct holding every section."""

from __future__ import annotations

from pathlib import Path

import msgspec

from logfactory.config.base import Section
from logfactory.config.node import BusConfig, CollectorConfig, HttpConfig, NodeConfig
from logfactory.config.rules import AlertRule, Mapping, ThresholdRule
from logfactory.config.sources import SourceConfig
from logfactory.config.store import StoreConfig
from logfactory.config.workshops import EventTypeConfig, FactoryConfig, WorkshopConfig

__all__ = ["LOADER_KEYS", "Config"]

# Config fields the loader sets; a file must not
LOADER_KEYS = ("path", "warnings")


class Config(Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The configuration file's top level.

    Attributes:
        node: who this node is and where it keeps its data
        bus: the log that joins the stages
        http: the HTTP API
        collector: how collectors ride out a bus outage
        sources: the inputs, each selected by its type
        workshops: name -> one log format and its options
        factory: the event factory's group and routes
        event_types: site-defined event types
        mappings: decoded records -> typed events
        alerts: the alert library (Pa)
        rules: windowed threshold rules
        store: the log store: its engine, retention and query limits
    """

    node: NodeConfig = NodeConfig()
    bus: BusConfig = BusConfig()
    http: HttpConfig = HttpConfig()
    collector: CollectorConfig = msgspec.field(default_factory=CollectorConfig)
    sources: list[SourceConfig] = []
    workshops: dict[str, WorkshopConfig] = {}
    factory: FactoryConfig = FactoryConfig()
    event_types: list[EventTypeConfig] = []
    mappings: list[Mapping] = []
    alerts: list[AlertRule] = []
    rules: list[ThresholdRule] = []
    store: StoreConfig = msgspec.field(default_factory=StoreConfig)
    # set by the loader, never from the file: the file's name, and "FILE:LINE: key.path: ..."
    # of what looks wrong but does not stop a node (config/fields.py), for `check` and the
    # node's start to print
    path: str = ""
    warnings: tuple[str, ...] = ()

    @property
    def data_dir(self) -> Path:
        return Path(self.node.data_dir)
