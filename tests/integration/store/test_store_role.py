"""The store role over a real local bus and the real embedded engine, in this process: parsed
records and events become searchable, a value that is neither becomes a dead letter, counters
say what happened, and a replay stores nothing twice."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers.bus import read_all
from tests.helpers.store_data import DAY_NS, sample_docs
from tests.helpers.store_feed import EVENT_TOPIC, bus_of, feed, recent_docs, store_config
from tests.helpers.store_oracle import expected_ids
from tests.helpers.waiting import wait_for

from logfactory.bus.local import LocalBus
from logfactory.config import Config
from logfactory.record import now_ns
from logfactory.stats import StatsRegistry
from logfactory.store.document import StoredDoc, from_event, from_parsed
from logfactory.store.open import open_reader
from logfactory.store.query.tree import And, MatchAll, Phrase, Query, Term, Word
from logfactory.store.role import STAGE
from logfactory.store.runner import run_store_resilient
from logfactory.topics import DEADLETTER, PARSED

pytestmark = pytest.mark.integration

N = 1500


class Running:
    """``run_store_resilient`` in a thread, as ``logfactory store`` runs it."""

    def __init__(self, config: Config) -> None:
        self.registry = StatsRegistry("store-test")
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=run_store_resilient, args=(config, self.registry, self.stop), daemon=True
        )
        self.thread.start()

    def counters(self) -> dict[str, int]:
        return dict(self.registry.snapshot()["counters"].get("store", {}))

    def end(self) -> None:
        self.stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive(), "the store role did not stop"


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return store_config(tmp_path)


@pytest.fixture
def bus(config: Config) -> Iterator[LocalBus]:
    bus = bus_of(config)
    yield bus
    bus.close()


def _as_stored(topic: str, value: bytes) -> StoredDoc:
    return from_parsed(value, "") if topic == PARSED else from_event(value, "")


def test_records_and_events_become_searchable_and_bad_values_dead_letters(
    config: Config, bus: LocalBus
) -> None:
    fed = feed(bus, recent_docs(N), bad=4)
    run = Running(config)
    try:
        wait_for(lambda: run.counters().get("received", 0) >= N + 4, 60, "the store to read all")
        wait_for(lambda: run.counters().get("stored", 0) >= N, 60, "the store to commit all")
    finally:
        run.end()
    counters = run.counters()
    assert counters["received"] == N + 4
    assert counters["stored"] == N
    assert counters["deadletters"] == 4
    assert counters.get("duplicates", 0) == 0
    assert counters["commits"] >= 1
    assert run.registry.problems() == {}

    letters = [json.loads(m.value) for m in read_all(bus, DEADLETTER)]
    assert len(letters) == 4
    assert {letter["stage"] for letter in letters} == {STAGE}
    assert sorted(base64.b64decode(letter["original_b64"]) for letter in letters) == sorted(
        value for _topic, value in fed.bad
    )
    assert all("not a" in letter["reason"] for letter in letters)
    assert all(letter["position"].count("/") == 2 for letter in letters)

    # offsets committed past everything: a new role would read nothing again
    for topic in (PARSED, "events.ALERT"):
        committed = bus.committed(config.store.group, topic)
        ends = {p: hi for p, (_lo, hi) in bus.watermarks(topic).items() if hi}
        assert {p: committed.get(p) for p in ends} == ends

    expected = [_as_stored(topic, value) for topic, value in fed.values]
    reader = open_reader(config)
    try:
        assert reader.count(Query(MatchAll())) == N
        page = reader.search(Query(MatchAll()), limit=N + 10)
        assert sorted(d.id for d in page.hits) == sorted(fed.ids)
        for where in (
            Word("password"),
            Phrase("session opened"),
            And((Term("kind", "event"), Word("alice"))),
            Term("host", "cn0003"),
        ):
            query = Query(where)
            want = expected_ids(query, expected)
            assert want, f"the sample has no match for {where}: a useless check"
            got = reader.search(query, limit=N).hits
            assert [d.id for d in got] == want, where
    finally:
        reader.close()


def _rewind(config: Config, bus: LocalBus) -> None:
    """Commit the store group's offsets back to the start, as an operator resetting the group
    would: the next store reads everything again, at the same positions."""
    consumer = bus.consumer(config.store.group, [PARSED, EVENT_TOPIC], "earliest")
    try:
        consumer.poll(1, timeout=1.0)  # joins the group and takes every partition
        consumer.commit({tp: 0 for tp in consumer.assignment()})
    finally:
        consumer.close()


def test_a_replay_stores_nothing_twice(config: Config, bus: LocalBus) -> None:
    """The same records read again from the same positions (as after a crash between the
    engine's commit and the bus's): counted as duplicates, held once."""
    feed(bus, recent_docs(400))
    first = Running(config)
    try:
        wait_for(lambda: first.counters().get("stored", 0) >= 400, 60, "the first copy stored")
    finally:
        first.end()
    _rewind(config, bus)
    assert sum(bus.committed(config.store.group, PARSED).values()) == 0
    again = Running(config)
    try:
        wait_for(lambda: again.counters().get("received", 0) >= 400, 60, "the replay read")
        wait_for(lambda: again.counters().get("commits", 0) >= 1, 60, "the replay committed")
    finally:
        again.end()
    assert again.counters().get("stored", 0) == 0
    assert again.counters()["duplicates"] == 400
    reader = open_reader(config)
    try:
        assert reader.count(Query(MatchAll())) == 400
    finally:
        reader.close()


def test_retention_at_start_drops_days_past_the_age_limit(config: Config, bus: LocalBus) -> None:
    """Records that arrived 40 days ago are stored (the store keeps what it is given), and the
    next start applies ``retention.max_age`` (30 days): their day is dropped, counted, and
    yesterday's records stay."""
    old = sample_docs(300, seed=1, start_ns=(now_ns() // DAY_NS - 40) * DAY_NS)
    recent = recent_docs(200)
    feed(bus, old + recent)
    first = Running(config)
    try:
        wait_for(lambda: first.counters().get("stored", 0) >= 500, 60, "everything stored")
    finally:
        first.end()
    reader = open_reader(config)
    try:
        assert reader.count(Query(MatchAll())) == 500
    finally:
        reader.close()
    again = Running(config)
    try:
        wait_for(lambda: "retention_dropped" in again.counters(), 60, "retention at start")
    finally:
        again.end()
    assert again.counters()["retention_dropped"] == 300
    reader = open_reader(config)
    try:
        held = sorted(d.id for d in reader.search(Query(MatchAll()), limit=1000).hits)
    finally:
        reader.close()
    assert held == sorted(d.id for d in recent)
