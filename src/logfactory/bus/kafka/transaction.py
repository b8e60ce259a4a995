"""The Kafka bus's transaction: outputs and input offsets of one batch, exactly once.

The broker-side mechanics (order of the calls, the guard, the transactional ids) are described
in :mod:`logfactory.bus.kafka.txn`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType

from logfactory.bus.base import BusError, TopicPartition
from logfactory.bus.kafka.consumer import KafkaConsumer
from logfactory.bus.kafka.sites import TransactionSite
from logfactory.bus.kafka.txn import Entry, TxnProducer

__all__ = ["KafkaTransaction"]


class KafkaTransaction:
    """Outputs and input offsets of one batch; sent to the broker only when the block ends."""

    def __init__(self, bus: TransactionSite, consumer: KafkaConsumer) -> None:
        self._bus = bus
        self._consumer = consumer
        self._batch: list[Entry] = []
        self._offsets: dict[TopicPartition, int] = {}
        self._held = consumer.epochs()
        self._done = False

    def produce(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        if self._done:
            raise BusError("transaction already finished")
        self._batch.append((topic, key, value))

    def commit_offsets(self, offsets: Mapping[TopicPartition, int]) -> None:
        if self._done:
            raise BusError("transaction already finished")
        self._offsets.update(offsets)

    def __enter__(self) -> KafkaTransaction:
        self._held = self._consumer.epochs()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._done:
            return
        self._done = True
        if exc_type is not None or (not self._batch and not self._offsets):
            return  # nothing was sent, so nothing needs undoing
        consumer = self._consumer
        offsets = self._offsets if consumer.group is not None else {}
        if offsets:
            consumer.check_owner(list(offsets), self._held)
        for topic in {t for t, _k, _v in self._batch}:
            self._bus.topic_partitions(topic)
        producer = consumer.txn
        if producer is None:
            producer = TxnProducer(self._bus, self._bus.txn_id(consumer.group))
        elif producer.broken:  # fenced or fatal: a new instance under the same (stable) id
            producer.close()
            producer = TxnProducer(self._bus, producer.transactional_id)
        consumer.txn = producer
        written = producer.run(consumer, self._batch, offsets)
        self._bus.wait_visible(written)
