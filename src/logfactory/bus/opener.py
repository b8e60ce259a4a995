"""Opening the bus a configuration names: the one place that knows the implementations.

Why here and not in the subscriber SDK: the node, the factory, the CLI and the readers all
open buses; each gets a :class:`~logfactory.bus.base.Bus` and asks for an optional capability
(:mod:`logfactory.bus.base`) with ``isinstance`` once, instead of knowing the bus class.
Implementations are imported on first use, so a site on the embedded bus never loads
librdkafka.
"""

from __future__ import annotations

from logfactory.bus.base import Bus
from logfactory.config import Config

__all__ = ["open_bus"]


def open_bus(config: Config, *, worker: str | None = None, create: bool = True) -> Bus:
    """The bus a configuration names; the caller owns it and must close it.

    ``worker`` names a factory worker stably across its restarts; on Kafka it becomes the
    transactional id prefix, so a restarted worker fences its crashed predecessor at once.
    ``create=False`` (readers): a local bus that no node made raises
    :class:`~logfactory.errors.MissingBusError` instead of being made empty; other buses
    ignore it.
    """
    if config.bus.type == "local":
        from logfactory.bus.local import LocalBus

        return LocalBus(
            config.data_dir / "bus",
            fsync=config.bus.fsync,
            default_partitions=config.bus.partitions,
            create=create,
        )
    if config.bus.type == "http":
        from logfactory.bus.http_ship import HttpShipBus, ShipTarget

        ship = config.bus.http
        target = ShipTarget(
            ship.url, ship.token, ship.ca_file, ship.verify,
            client_cert=ship.client_cert, client_key=ship.client_key,
        )  # fmt: skip
        return HttpShipBus(target)
    from logfactory.bus.kafka import KafkaBus

    keys = dict(config.bus.kafka)
    if worker is not None:
        keys.setdefault("transactional.id", f"{config.node.name}-{worker}")
    return KafkaBus(
        config=keys, partitions=config.bus.partitions, client_id=f"logfactory-{config.node.name}"
    )
