"""librdkafka errors as bus errors: one mapping for the consumer and the transactions."""

from __future__ import annotations

from confluent_kafka import KafkaError

from logfactory.bus.base import BusError, FencedError
from logfactory.bus.kafka.config import FENCED_CODES

__all__ = ["error_name", "raise_mapped"]


def error_name(err: KafkaError) -> str:
    name = err.name()
    return name if isinstance(name, str) else str(err.code())


def raise_mapped(err: KafkaError, what: str) -> None:
    """Raise the bus error matching a librdkafka error: fenced or plain."""
    name = error_name(err)
    if name in FENCED_CODES:
        raise FencedError(f"{what}: this member lost its partitions ({name}: {err.str()})")
    raise BusError(f"{what}: {name}: {err.str()}")
