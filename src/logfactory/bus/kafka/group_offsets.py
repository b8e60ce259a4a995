"""A consumer group's committed offsets, asked through a consumer of that group that never joins.

Why not the admin API: librdkafka's ListConsumerGroupOffsets kills the whole process (SIGSEGV
in one of its own threads, so no Python stack either) when a broker answers NOT_COORDINATOR,
as one does for a moment while a group's coordinator moves after a broker stopped or started.
The admin client has no group handle, and the answer's handler asks that missing handle to look
the coordinator up again (confluentinc/librdkafka#5040; reproduced here within one broker
restart, and it ended a CI run). A consumer's own ``committed()`` goes through its group handle,
which does look the coordinator up again. The consumer never subscribes, so it never becomes a
member: reading a live group's offsets does not rebalance it.

Pending transactional commits: an offset committed inside a transaction is pending until the
commit marker is written, a moment after ``commit_transaction`` returned. A ``read_committed``
reader asks for stable offsets, and librdkafka keeps asking while one is pending (for ever, if
the producer crashed: until its transaction is aborted), so it gets ``UNSTABLE_WAIT``; then a
``read_uncommitted`` reader answers with the last offsets committed.
"""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from collections.abc import Sequence

from confluent_kafka import Consumer as RdConsumer
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import TopicPartition as RdTopicPartition

from logfactory.bus.base import BusError, TopicPartition
from logfactory.bus.kafka.config import KafkaSettings, consumer_config

__all__ = ["GroupOffsets"]

log = logging.getLogger(__name__)

#: how long a warm read_committed reader may wait for pending commits to settle
UNSTABLE_WAIT = 0.5
#: the same for a new reader, which first looks the group's coordinator up (~60 ms, unloaded)
COLD_WAIT = 2.0
#: a read_uncommitted query's time limit; one that times out is asked once more of a new reader
GROUP_TIMEOUT = 10.0
#: readers kept open (one per group and isolation level asked recently)
KEEP = 8

Key = tuple[str, bool]  # (group, stable)


class GroupOffsets:
    """Committed offsets of any group, with a few readers kept open between queries."""

    def __init__(self, settings: KafkaSettings, client_id: str) -> None:
        self._settings = settings
        self._client_id = client_id
        self._readers: OrderedDict[Key, RdConsumer] = OrderedDict()
        self._warm: set[Key] = set()  # readers that have answered once

    def read(self, group: str, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        """Next offsets ``group`` committed on ``partitions``; a partition without one is left
        out (as is every partition of a group that does not exist)."""
        asked = [RdTopicPartition(t, p) for t, p in partitions]
        stable = (group, True)
        got = self._ask(stable, asked, UNSTABLE_WAIT if stable in self._warm else COLD_WAIT)
        if got is None:  # a commit still pending (or no answer at all): the last committed
            got = self._last_committed(group, asked)
        return {(x.topic, x.partition): x.offset for x in got if x.offset >= 0 and x.error is None}

    def _last_committed(self, group: str, asked: list[RdTopicPartition]) -> list[RdTopicPartition]:
        last = (group, False)
        got = self._ask(last, asked, GROUP_TIMEOUT)
        if got is None:
            # librdkafka can keep asking a coordinator that stopped (librdkafka#5511)
            log.warning("committed offsets of group %r: no answer in %g s, asking again "
                        "on a new connection", group, GROUP_TIMEOUT)  # fmt: skip
            self._drop(last)
            got = self._ask(last, asked, GROUP_TIMEOUT)
        if got is None:
            raise BusError(
                f"committed offsets of group {group!r}: no answer in {GROUP_TIMEOUT:g} s, "
                "twice (is the group's coordinator reachable?)"
            )
        return got

    def close(self) -> None:
        while self._readers:
            _close(self._readers.popitem()[1])
        self._warm.clear()

    def _ask(
        self, key: Key, asked: list[RdTopicPartition], timeout: float
    ) -> list[RdTopicPartition] | None:
        """The reader's answer, or None if it had none within ``timeout``."""
        try:
            got = self._reader(key).committed(asked, timeout=timeout)
        except KafkaException as e:
            err: KafkaError = e.args[0]
            if err.code() == KafkaError._TIMED_OUT:
                return None
            raise BusError(f"committed offsets of group {key[0]!r}: {err.str()}") from None
        self._warm.add(key)
        return list(got)

    def _reader(self, key: Key) -> RdConsumer:
        reader = self._readers.get(key)
        if reader is not None:
            self._readers.move_to_end(key)
            return reader
        group, stable = key
        conf = consumer_config(self._settings, self._client_id, group, "earliest")
        if not stable:
            conf["isolation.level"] = "read_uncommitted"
        try:
            reader = RdConsumer(conf)
        except KafkaException as e:
            raise BusError(f"cannot create a Kafka consumer: {e}") from None
        self._readers[key] = reader
        while len(self._readers) > KEEP:
            self._drop(next(iter(self._readers)))
        return reader

    def _drop(self, key: Key) -> None:
        self._warm.discard(key)
        reader = self._readers.pop(key, None)
        if reader is not None:
            _close(reader)


def _close(reader: RdConsumer) -> None:
    """Never a member, so closing does not wait for a coordinator."""
    with contextlib.suppress(KafkaException, RuntimeError):
        reader.close()
