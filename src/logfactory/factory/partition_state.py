"""Per-partition factory state: open multi-line records and partial composite windows.

Why per partition of ``logs.raw`` and not per worker: the partitions of one consumer group move
between workers (a worker joins, leaves or dies). State that follows the partition — written to
the compacted ``factory.state`` topic under ``<group>/<topic>/<partition>`` in the same
transaction as that partition's offsets — is exactly as old as the offsets the next owner
resumes from, whoever that owner is. A worker-wide snapshot would be overwritten by whichever
worker committed last and restored by a worker that may own none of its hosts.

The price is that a composite rule counts the records of one partition: ``logs.raw`` is keyed
by host, so a window sees the hosts that share a partition. The README's Kafka section says
what that means for rules that correlate across hosts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from logfactory.bus.base import Bus, BusError, Consumer, TopicPartition
from logfactory.factory.process.rules import ProcessStage
from logfactory.factory.sort import Sorter
from logfactory.record import now_ns
from logfactory.topics import STATE

__all__ = ["PartitionState", "StateFeed", "WorkerState", "state_key"]

log = logging.getLogger(__name__)


class WorkerState(msgspec.Struct):
    """What one partition's owner must carry across a move or restart besides its offset."""

    sort: bytes = b""
    process: bytes = b""


_state_decoder = msgspec.json.Decoder(WorkerState)
state_encoder = msgspec.json.Encoder()


def state_key(group: str, tp: TopicPartition) -> bytes:
    return f"{group}/{tp[0]}/{tp[1]}".encode()


@dataclass(slots=True)
class PartitionState:
    """The stages that hold state, for one partition owned under one assignment ``epoch``."""

    epoch: int
    key: bytes
    sorter: Sorter
    process: ProcessStage
    saved: WorkerState

    def current(self) -> WorkerState:
        return WorkerState(self.sorter.snapshot(), self.process.snapshot())

    def restore(self, value: bytes | None) -> None:
        if not value:
            self.saved = self.current()
            return
        try:
            state = _state_decoder.decode(value)
            if state.sort:
                self.sorter.restore(state.sort, now_ns())
            if state.process:
                self.process.restore(state.process)
        except (ValueError, msgspec.DecodeError) as exc:
            log.error("state of %s unreadable, starting it empty: %s", self.key.decode(), exc)
        self.saved = self.current()


class StateFeed:
    """The newest committed value of every ``factory.state`` key, kept current on demand.

    Reading to the end matters: a partition's previous owner may have committed its last batch
    a moment ago. The feed reads until it has passed the end offsets it saw when asked; on Kafka
    it reads committed data only, so a transaction still open (a worker killed mid-batch) holds
    it back until the broker aborts that transaction, which is exactly when the partition's
    committed offset also becomes final.
    """

    def __init__(self, bus: Bus, catch_up_timeout: float = 120.0) -> None:
        self._bus = bus
        self._timeout = catch_up_timeout
        self._consumer: Consumer = bus.consumer(None, [STATE], "earliest")
        self.values: dict[bytes, bytes] = {}

    def catch_up(self, stop: Callable[[], bool] = lambda: False) -> None:
        ends = {(STATE, p): hi for p, (_lo, hi) in self._bus.watermarks(STATE).items()}
        deadline = time.monotonic() + self._timeout
        while True:
            position = self._consumer.position()
            if all(position.get(tp, 0) >= hi for tp, hi in ends.items()):
                return
            if time.monotonic() > deadline:
                raise BusError(
                    f"could not read {STATE} to its end within {self._timeout:g} s: a "
                    "transaction of another worker may be stuck; check the brokers"
                )
            if stop():
                return
            for msg in self._consumer.poll(5000, timeout=0.2):
                if msg.key is not None:
                    self.values[msg.key] = msg.value

    def close(self) -> None:
        self._consumer.close()
