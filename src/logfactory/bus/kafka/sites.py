"""What the Kafka bus's parts need of the bus: narrow protocols instead of :class:`KafkaBus`.

Why: the consumer, the transaction, the transactional producer and maintenance each use a few
of the bus's services (settings, topic metadata, offsets). Depending on these protocols rather
than on the bus class keeps the package free of import cycles: the bus module imports its
parts, and no part imports the bus.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

from logfactory.bus.base import TopicPartition
from logfactory.bus.kafka.config import KafkaSettings

__all__ = ["ClientSite", "ConsumerSite", "MaintenanceSite", "TransactionSite"]


class ClientSite(Protocol):
    """Enough to configure a librdkafka client of the bus's cluster."""

    @property
    def settings(self) -> KafkaSettings: ...

    @property
    def client_id(self) -> str: ...


class ConsumerSite(ClientSite, Protocol):
    """What a consumer needs: partition counts (creating missing topics) and watermarks."""

    def topic_partitions(self, topic: str) -> int: ...

    def bounds(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, tuple[int, int]]: ...


class TransactionSite(ClientSite, Protocol):
    """What a transaction needs: topics, transactional ids, and visibility of its outputs."""

    def topic_partitions(self, topic: str) -> int: ...

    def txn_id(self, group: str | None) -> str: ...

    def wait_visible(self, written: Mapping[TopicPartition, int]) -> None: ...


class MaintenanceSite(ClientSite, Protocol):
    """What retention and compaction need: the topics and their offsets."""

    def topics(self) -> dict[str, int]: ...

    def bounds(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, tuple[int, int]]: ...

    def offsets_at(
        self, specs: Mapping[TopicPartition, OffsetSpec]
    ) -> dict[TopicPartition, int]: ...
