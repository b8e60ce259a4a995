"""The store benchmark's generator: deterministic per batch, ids unique, times in the window.

The kept 10M store is reused across runs on the promise that the same version makes the same
data; these tests hold the generator to it on small batches (the real code path, smaller)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from bench.store_data import START_NS, BatchMaker, end_ns, to_docs

from logfactory.topics import PARSED

# the real data's rate (10M lines over the window) in small batches: the same mix, quickly
LINES, BATCH, MADE = 10_000_000, 2000, 3


@pytest.fixture(scope="module")
def maker() -> Iterator[BatchMaker]:
    made = BatchMaker(LINES, batch_lines=BATCH)
    yield made
    made.close()


def test_a_batch_is_the_same_every_time_and_from_another_maker(maker: BatchMaker) -> None:
    first = maker.make(1)
    other = BatchMaker(LINES, batch_lines=BATCH)
    try:
        again = other.make(1)
    finally:
        other.close()
    assert first.messages == again.messages
    assert (first.lines, first.raw_bytes) == (again.lines, again.raw_bytes)
    assert maker.make(1).messages == first.messages  # after other batches of the same maker
    assert maker.make(0).messages != first.messages


def test_batches_hold_logs_and_events_with_ids_unique_across_batches(maker: BatchMaker) -> None:
    offsets: dict[str, int] = {}
    docs = [doc for k in range(MADE) for _pos, doc in to_docs(maker.make(k).messages, offsets)]
    kinds = Counter(doc.kind for doc in docs)
    # every demo line is one parsed log but the torn heartbeats (dead letters, not stored)
    assert MADE * BATCH * 0.99 <= kinds["log"] < MADE * BATCH
    assert kinds["event"] > MADE * BATCH * 0.1
    assert len({doc.id for doc in docs}) == len(docs)
    assert {doc.type for doc in docs if doc.kind == "event"} >= {"JOB_STATUS", "USER_OP", "ALERT"}
    assert len({doc.host for doc in docs}) > 50
    assert {"info", "error", "warning"} <= {doc.severity for doc in docs}


def test_times_fall_in_the_batch_slice_of_the_window(maker: BatchMaker) -> None:
    window = end_ns(LINES, BATCH) - START_NS
    slice_ns = window // maker.batches
    batch = maker.make(2)
    times = [doc.time for _pos, doc in to_docs(batch.messages, {}) if doc.kind == "log"]
    assert START_NS + 2 * slice_ns - 1_000_000_000 < min(times)  # stamps are whole seconds
    assert max(times) < START_NS + 3 * slice_ns
    assert batch.lines == BATCH
    assert batch.raw_bytes > BATCH * 40
    assert batch.logs == sum(1 for topic, _k, _v in batch.messages if topic == PARSED)


def test_a_batch_outside_the_data_is_refused(maker: BatchMaker) -> None:
    with pytest.raises(ValueError, match="not one of"):
        maker.make(maker.batches)
