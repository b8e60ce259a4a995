"""logfactory: raw logs in, typed events out. The public SDK is what ``__all__`` names.

The exceptions a reader of the SDK meets are exported here; :mod:`logfactory.errors` holds
the whole tree, rooted at :class:`LogfactoryError`."""

from logfactory.errors import (
    BusError,
    ConfigError,
    DamagedBusError,
    LogfactoryError,
    MissingBusError,
    NoNodeError,
)
from logfactory.event import Event, Header
from logfactory.record import Record
from logfactory.subscribe import Subscriber, tail

__all__ = [
    "BusError",
    "ConfigError",
    "DamagedBusError",
    "Event",
    "Header",
    "LogfactoryError",
    "MissingBusError",
    "NoNodeError",
    "Record",
    "Subscriber",
    "tail",
]
