"""The collector's disk spool against a fake bus that can be taken down and brought back."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.helpers.waiting import wait_for

from logfactory.bus.base import BusError
from logfactory.collect.agent import Agent
from logfactory.collect.sources.base import Emit
from logfactory.collect.spool import OVER_LIMIT_BACKLOG, SpoolingProducer
from logfactory.config import (
    CollectorConfig,
    Config,
    ConfigError,
    Duration,
    NodeConfig,
    parse_config,
)
from logfactory.record import decode_record, make_record
from logfactory.stats import StatsRegistry

Msg = tuple[str, bytes | None, bytes]


class FakeBus:
    """An inner producer like the patient Kafka one: while ``up`` a message is delivered at
    once; while down it stays in flight (delivered first when the bus returns) and ``flush``
    raises. ``broken`` makes ``produce`` itself raise, like a sticky producer error."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.up = True
        self.broken = False
        self.inflight: list[Msg] = []
        self.delivered: list[Msg] = []

    def produce(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        with self.lock:
            if self.broken:
                raise BusError("delivery failed: broken")
            self.inflight.append((topic, key, value))
            if self.up:
                self.delivered.extend(self.inflight)
                self.inflight.clear()

    def flush(self, timeout: float | None = None) -> None:
        with self.lock:
            if self.inflight:
                raise BusError(f"{len(self.inflight)} messages not yet delivered")

    def set_up(self, up: bool) -> None:
        with self.lock:
            self.up = up
            if up:
                self.delivered.extend(self.inflight)
                self.inflight.clear()

    def close(self) -> None:
        return None

    def values(self) -> list[bytes]:
        with self.lock:
            return [v for _t, _k, v in self.delivered]


def spool_for(inner: FakeBus, path: Path, **kw: object) -> SpoolingProducer:
    opts: dict[str, object] = {"flush_timeout": 0.05, "retry_interval": 0.01, "write_batch": 50}
    opts.update(kw)
    return SpoolingProducer(inner, path, **opts)  # type: ignore[arg-type]


def rows_on_disk(path: Path) -> list[bytes]:
    db = sqlite3.connect(path)
    try:
        return [bytes(r[0]) for r in db.execute("SELECT value FROM spool ORDER BY seq")]
    finally:
        db.close()


def vals(start: int, stop: int) -> list[bytes]:
    return [b"v%d" % i for i in range(start, stop)]


def test_direct_mode_passes_messages_straight_through(tmp_path: Path) -> None:
    inner = FakeBus()
    spool = spool_for(inner, tmp_path / "spool" / "c.db")
    for v in vals(0, 10):
        spool.produce("logs.raw", v, b"h1")
    spool.flush()
    assert inner.delivered == [("logs.raw", b"h1", v) for v in vals(0, 10)]
    assert spool.state()["mode"] == "direct"
    assert spool.pending() == 0
    spool.close()
    assert not (tmp_path / "spool").exists()  # nothing was ever spooled
    with pytest.raises(BusError, match="closed"):
        spool.produce("logs.raw", b"late")


def test_an_outage_spools_to_disk_and_a_restart_resends_in_order(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    registry = StatsRegistry("t")
    inner = FakeBus()
    spool = spool_for(inner, path, registry=registry)
    for v in vals(0, 5):
        spool.produce("logs.raw", v, b"h")
    spool.flush()
    inner.set_up(False)
    for v in vals(5, 8):  # handed to the bus, which cannot deliver them
        spool.produce("logs.raw", v, b"h")
    spool.flush()  # does not raise: the checkpoint may commit positions
    state = spool.state()
    assert state["mode"] == "spooling"
    assert "not yet delivered" in state["error"]
    assert state["since"] is not None
    for v in vals(8, 120):
        spool.produce("logs.raw", v, b"h")
    spool.flush()
    # the in-flight ones are on disk too, ahead of the rest: a crash now loses nothing
    assert rows_on_disk(path) == vals(5, 120)
    assert spool.state()["records"] == 115
    snap = registry.snapshot()
    assert snap["counters"]["spool"]["spooled"] == 112
    assert snap["gauges"]["spool.records"] == 115
    assert "bus not taking records since" in snap["problems"]["spool"]
    spool.close()  # the collector stops during the outage
    assert rows_on_disk(path) == vals(5, 120)
    assert inner.values() == vals(0, 5)

    fresh = FakeBus()  # the next run
    fresh.set_up(False)
    again = spool_for(fresh, path, registry=registry)
    assert again.state()["mode"] == "spooling"  # leftovers go first
    again.produce("logs.raw", b"new", b"h")
    fresh.set_up(True)
    wait_for(lambda: again.state()["mode"] == "direct", 10, "the leftovers to drain")
    again.produce("logs.raw", b"newer", b"h")
    again.flush()
    assert fresh.values() == [*vals(5, 120), b"new", b"newer"]
    assert again.state()["records"] == 0
    assert rows_on_disk(path) == []
    assert "spool" not in registry.problems()
    again.close()


def test_the_drain_waits_for_old_in_flight_messages_then_resends_and_goes_direct(
    tmp_path: Path,
) -> None:
    registry = StatsRegistry("t")
    inner = FakeBus()
    spool = spool_for(inner, tmp_path / "c.db", registry=registry, drain_batch=300)
    inner.set_up(False)
    for v in vals(0, 10):
        spool.produce("logs.raw", v, b"a")
    spool.flush()
    for i, v in enumerate(vals(10, 2000)):
        spool.produce("logs.raw", v, b"a" if i % 2 else b"b")
    spool.flush()
    assert spool.state()["mode"] == "spooling"
    assert inner.values() == []
    inner.set_up(True)  # the 10 in flight are delivered first, then the spool
    wait_for(lambda: spool.state()["mode"] == "direct", 10, "the spool to drain")
    assert inner.values() == vals(0, 2000)  # nothing lost, nothing twice, in order
    for v in vals(2000, 2010):
        spool.produce("logs.raw", v, b"a")
    assert inner.values() == vals(0, 2010)
    state = spool.state()
    assert state["records"] == 0
    assert state["bytes"] == 0
    assert state["error"] is None
    counters = registry.snapshot()["counters"]["spool"]
    assert counters == {"spooled": 1990, "resent": 1990}  # the 10 copies were never resent
    spool.close()


def test_over_max_bytes_the_sources_are_slowed_not_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    inner = FakeBus()
    spool = spool_for(inner, tmp_path / "c.db", max_bytes=1000, write_batch=10_000)
    inner.set_up(False)
    spool.produce("logs.raw", b"x" * 100)
    spool.flush()
    assert spool.pending() == 0
    with caplog.at_level(logging.ERROR, logger="logfactory.collect.spool"):
        for _ in range(30):
            spool.produce("logs.raw", b"x" * 100)
    assert spool.pending() >= OVER_LIMIT_BACKLOG
    assert sum("over its limit" in r.message for r in caplog.records) == 1  # once
    spool.flush()
    assert spool.pending() >= OVER_LIMIT_BACKLOG  # on disk, still over
    inner.set_up(True)
    wait_for(lambda: spool.state()["mode"] == "direct", 10, "the spool to drain")
    assert len(inner.delivered) == 31
    assert spool.pending() == 0
    spool.close()


def test_a_failing_produce_spools_the_message_instead(tmp_path: Path) -> None:
    inner = FakeBus()
    spool = spool_for(inner, tmp_path / "c.db")
    spool.produce("logs.raw", b"one")
    spool.flush()
    inner.broken = True
    spool.produce("logs.raw", b"two")  # does not raise
    spool.flush()
    assert spool.state()["mode"] == "spooling"
    assert "broken" in spool.state()["error"]
    assert rows_on_disk(tmp_path / "c.db") == [b"two"]
    inner.broken = False
    wait_for(lambda: spool.state()["mode"] == "direct", 10, "the spool to drain")
    assert inner.values() == [b"one", b"two"]
    spool.close()


def test_too_many_unconfirmed_messages_spool_without_waiting_for_a_flush(tmp_path: Path) -> None:
    inner = FakeBus()
    spool = spool_for(inner, tmp_path / "c.db", max_unconfirmed=20)
    inner.set_up(False)
    for v in vals(0, 50):  # no flush: produce itself switches, so it never blocks on the bus
        spool.produce("logs.raw", v)
    assert spool.state()["mode"] == "spooling"
    assert len(inner.inflight) == 20
    inner.set_up(True)
    wait_for(lambda: spool.state()["mode"] == "direct", 10, "the spool to drain")
    assert inner.values() == vals(0, 50)
    spool.close()


def test_closing_with_the_bus_down_keeps_unconfirmed_messages(tmp_path: Path) -> None:
    inner = FakeBus()
    spool = spool_for(inner, tmp_path / "c.db")
    spool.produce("logs.raw", b"a")
    spool.flush()
    inner.set_up(False)
    spool.produce("logs.raw", b"b")  # direct, never confirmed
    spool.close()
    assert rows_on_disk(tmp_path / "c.db") == [b"b"]


# each step: ("put", n) produce n records, ("flush", 0), ("down", 0), ("up", 0)
_STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(1, 120)),
        st.tuples(st.sampled_from(["flush", "down", "up"]), st.just(0)),
    ),
    max_size=25,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=_STEPS, batch=st.integers(1, 80), max_unconfirmed=st.integers(5, 400))
def test_random_outages_lose_and_reorder_nothing(
    steps: list[tuple[str, int]], batch: int, max_unconfirmed: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.db"
        inner = FakeBus()
        spool = spool_for(
            inner, path, write_batch=batch, drain_batch=batch, max_unconfirmed=max_unconfirmed
        )
        n = 0
        for step in steps:
            if step[0] == "put":
                for _ in range(step[1]):
                    spool.produce("logs.raw", b"%d" % n, b"h%d" % (n % 3))
                    n += 1
            elif step[0] == "flush":
                spool.flush()
            else:
                inner.set_up(step[0] == "up")
        spool.flush()
        inner.set_up(True)
        wait_for(lambda: spool.state()["mode"] == "direct", 10, "the spool to drain")
        spool.flush()
        assert inner.values() == [b"%d" % i for i in range(n)]
        assert spool.state()["records"] == 0
        spool.close()


class _Lines:
    """A source emitting numbered records, one host, then waiting for stop."""

    name = "lines"

    def __init__(self, count: int) -> None:
        self.count = count

    async def run(self, emit: Emit, stop: asyncio.Event) -> None:
        for i in range(self.count):
            await emit(make_record("demo", "h1", f"line {i}"))
        await stop.wait()

    async def started(self) -> None:
        return None


def test_the_agent_keeps_collecting_through_an_outage(tmp_path: Path) -> None:
    config = Config(
        node=NodeConfig(data_dir=str(tmp_path / "data")),
        collector=CollectorConfig(spool="always", spool_flush_timeout=Duration("50ms")),
    )
    inner = FakeBus()
    inner.set_up(False)
    agent = Agent(config, inner, StatsRegistry("t"), extra_sources=[_Lines(300)],
                  checkpoint_interval=0.05)  # fmt: skip
    assert agent.spool is not None
    assert agent.producer is agent.spool
    spool = agent.spool

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        await agent.wait_ready()
        deadline = time.monotonic() + 30
        while spool.state()["records"] < 300:  # accepted and spooled while the bus is down
            assert not task.done()
            assert time.monotonic() < deadline, f"spooled {spool.state()} of 300 records"
            await asyncio.sleep(0.01)
        assert spool.state()["mode"] == "spooling"
        inner.set_up(True)
        deadline = time.monotonic() + 30
        while spool.state()["mode"] != "direct":
            assert time.monotonic() < deadline, f"the spool never drained: {spool.state()}"
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 10)

    asyncio.run(main())
    lines = [decode_record(v).line for v in inner.values()]
    assert lines == [f"line {i}" for i in range(300)]
    assert (tmp_path / "data" / "spool" / "collector.db").exists()


def test_a_local_bus_gets_no_spool_unless_asked(tmp_path: Path) -> None:
    config = Config(node=NodeConfig(data_dir=str(tmp_path)), sources=[])
    inner = FakeBus()
    assert Agent(config, inner, StatsRegistry("t")).producer is inner


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("collector:\n  spool_max_bytes: 12XB\n", "spool_max_bytes: '12XB' is not a size"),
        ("collector:\n  spool_flush_timeout: 0\n", "spool_flush_timeout must be more than 0"),
        ("collector:\n  spool: sometimes\n", "collector.spool"),
    ],
)
def test_collector_settings_are_checked(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(text)
    loaded = parse_config("collector: {spool_max_bytes: 2GiB}\n").collector.spool_max_bytes
    # bytes; and as the file wrote them
    assert loaded == 2 * 2**30
    assert loaded.text == "2GiB"


@pytest.mark.parametrize(
    ("user", "timeout", "queue"),
    [
        ({}, 0, 1_000_000),
        ({"message.timeout.ms": 5000, "queue.buffering.max.messages": 7}, 5000, 7),
    ],
)
def test_the_collectors_kafka_producer_never_times_out_unless_configured(
    monkeypatch: pytest.MonkeyPatch, user: dict[str, int], timeout: int, queue: int
) -> None:
    import logfactory.bus.kafka.bus as kafka_module

    seen: list[dict[str, object]] = []

    class Captured:
        def __init__(self, conf: dict[str, object]) -> None:
            seen.append(conf)

    monkeypatch.setattr(kafka_module, "RdProducer", Captured)
    bus = kafka_module.KafkaBus("127.0.0.1:1", config={"log_level": 0, **user})
    bus.producer(patient=True)
    bus.producer()
    patient, plain = seen
    assert patient["message.timeout.ms"] == timeout
    assert patient["queue.buffering.max.messages"] == queue
    assert plain["message.timeout.ms"] == (timeout or 30_000)


def test_a_damaged_spool_is_moved_aside_not_a_crash_loop(tmp_path: Path) -> None:
    path = tmp_path / "spool" / "c.db"
    path.parent.mkdir()
    path.write_bytes(b"SQLite format 3\x00" + b"\xde\xad" * 3000)  # a header, then garbage
    registry = StatsRegistry("t")
    inner = FakeBus()
    spool = SpoolingProducer(inner, path, registry=registry)
    spool.produce("logs.raw", b"after", b"h1")
    spool.flush()
    assert inner.delivered == [("logs.raw", b"h1", b"after")]
    damaged = list(path.parent.glob("c.db.damaged-*"))
    assert damaged
    assert damaged[0].read_bytes().startswith(b"SQLite format 3")
    assert registry.snapshot()["counters"]["spool"]["quarantined"] == 1
    spool.close()


class _GatedBus(FakeBus):
    """Its first flush stops, after its check passed, until ``gate`` opens; later flushes
    say that they started."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.first_in = threading.Event()
        self.gate = threading.Event()
        self.second_in = threading.Event()

    def flush(self, timeout: float | None = None) -> None:
        super().flush(timeout)
        self.calls += 1
        if self.calls == 1:
            self.first_in.set()
            assert self.gate.wait(30), "the test never opened the gate"
        else:
            self.second_in.set()


def test_flushes_from_two_threads_run_one_at_a_time_and_forget_nothing_unconfirmed(
    tmp_path: Path,
) -> None:
    """A checkpoint and an HTTP request flush at once. Each forgets the unconfirmed messages
    up to its own mark; had they overlapped, the later one would count its mark in a list the
    other had already shortened, and forget messages the bus had not confirmed."""
    inner = _GatedBus()
    spool = spool_for(inner, tmp_path / "c.db", flush_timeout=30)
    for v in vals(0, 10):
        spool.produce("logs.raw", v, b"h")
    first = threading.Thread(target=spool.flush)
    first.start()
    assert inner.first_in.wait(10)
    for v in vals(10, 15):
        spool.produce("logs.raw", v, b"h")
    second = threading.Thread(target=spool.flush)
    second.start()
    # the second flush waits for the first: it does not reach the bus while the first is there
    assert not inner.second_in.wait(0.5)
    inner.gate.set()
    first.join(10)
    second.join(10)
    assert inner.second_in.is_set()
    assert not first.is_alive()
    assert not second.is_alive()
    inner.set_up(False)
    for v in vals(15, 20):  # in flight: only the spool's copy keeps them
        spool.produce("logs.raw", v, b"h")
    spool.close()
    assert rows_on_disk(tmp_path / "c.db") == vals(15, 20)
