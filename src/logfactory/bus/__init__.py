"""The bus: one contract (:mod:`logfactory.bus.base`), the embedded SQLite log
(:mod:`logfactory.bus.local`), Apache Kafka (:mod:`logfactory.bus.kafka`), and an edge's
shipping to a central node (:mod:`logfactory.bus.http_ship`). :func:`open_bus` opens the one a
configuration names."""

from logfactory.bus.opener import open_bus

__all__ = ["open_bus"]
