"""The embedded bus: a durable, partitioned log in one SQLite database (see
:mod:`logfactory.bus.local.bus` for the layout and the guarantees).

Parts, bottom to top, each depending only on those below it and on narrow protocols of what it
needs of the bus (never on :class:`LocalBus` itself):

* ``db`` (the connection, schema, pragmas), ``batch`` (packed rows), ``marker`` (the
  directory's identity), ``wire`` (the offload protocol);
* ``topics`` (the topic cache), ``append`` (:class:`~logfactory.bus.local.append.Appender`,
  the one append path), ``heads`` (what readers watch), ``maintenance``, ``salvage``,
  ``repair``;
* ``producer``, ``consumer`` (with its transaction), ``writer`` (the offloading producer);
* ``bus`` (:class:`LocalBus`, which wires them together) and ``writer_process`` (the child
  that an offloading producer starts).
"""

from logfactory.bus.local.bus import (
    DamagedBusError,
    LocalBus,
    LocalConsumer,
    LocalProducer,
    LocalTransaction,
    MissingBusError,
)
from logfactory.bus.local.writer import OffloadProducer

__all__ = [
    "DamagedBusError",
    "LocalBus",
    "LocalConsumer",
    "LocalProducer",
    "LocalTransaction",
    "MissingBusError",
    "OffloadProducer",
]
