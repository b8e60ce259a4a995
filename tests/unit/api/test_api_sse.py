"""SSE subscriptions and topic tails, through FastAPI's TestClient against a real local bus."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers.clients import TestClient, api_client
from tests.helpers.waiting import wait_for

from logfactory.access import Role
from logfactory.access.store import AccessStore
from logfactory.api import NodeContext
from logfactory.api.context import ApiState
from logfactory.api.routes.subscribe import MAX_BATCH, EventReader
from logfactory.api.sse_reads import BATCH_BYTES, LocalWatch
from logfactory.bus.base import TopicSpec
from logfactory.bus.local import LocalBus
from logfactory.bus.local.db import LEAN_CACHE_KIB
from logfactory.config import ConfigError, parse_config
from logfactory.cursor import decode_cursor, encode_cursor
from logfactory.event import Event, Header, encode_event, format_time, topic_for_type
from logfactory.stats import StatsRegistry


@pytest.fixture
def ctx(tmp_path: Path, local_bus: LocalBus) -> Iterator[NodeContext]:
    config = parse_config("bus: {partitions: 2}\nevent_types: [{name: BACKUP}]\n", "t.yaml")
    producer = local_bus.producer()
    yield NodeContext(
        config=config,
        bus=local_bus,
        producer=producer,
        registry=StatsRegistry("node"),
        stats_dir=tmp_path / "stats",
        started=time.time(),
        access=AccessStore.in_dir(tmp_path / "access"),
    )
    producer.close()


@pytest.fixture
def client(ctx: NodeContext) -> Iterator[TestClient]:
    with api_client(ctx, role=Role.VIEWER) as c:  # reading needs no more than a viewer
        yield c


def put_events(bus: LocalBus, event_type: str, ids: range, partitions: int = 2) -> list[str]:
    """Produce envelopes with ids ``<TYPE>-<i>`` keyed over three hosts; returns the ids."""
    bus.ensure_topic(TopicSpec(topic_for_type(event_type), partitions))
    producer = bus.producer()
    out = []
    for i in ids:
        event = Event(
            header=Header(
                id=f"{event_type}-{i}",
                time=format_time(1_700_000_000_000_000_000 + i),
                type=event_type,
                host=f"h{i % 3}",
            ),
            body={"i": i},
        )
        producer.produce(topic_for_type(event_type), encode_event(event), f"h{i % 3}".encode())
        out.append(event.header.id)
    producer.flush()
    producer.close()
    return out


def parse_sse(text: str) -> list[dict[str, str]]:
    """SSE blocks as dicts (comments dropped, data lines joined); id-only blocks are kept."""
    blocks = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        data: list[str] = []
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            else:
                fields[name] = value
        if data:
            fields["data"] = "\n".join(data)
        if fields:
            blocks.append(fields)
    return blocks


def events_of(text: str) -> list[dict[str, str]]:
    return [b for b in parse_sse(text) if "data" in b]


def test_events_arrive_in_order_with_type_id_and_one_line_envelope(
    client: TestClient, local_bus: LocalBus
) -> None:
    ids = put_events(local_bus, "ALERT", range(6), partitions=1)
    r = client.get("/api/v1/subscribe", params={"types": "ALERT", "from": "earliest", "limit": 6})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = events_of(r.text)
    assert [json.loads(e["data"])["header"]["id"] for e in events] == ids
    assert {e["event"] for e in events} == {"ALERT"}
    assert all("\n" not in e["data"] for e in events)
    envelope = json.loads(events[2]["data"])
    assert envelope["body"] == {"i": 2}
    assert envelope["header"]["type"] == "ALERT"
    # each id is the position after its event: the last one stands at the end of the topic
    assert decode_cursor(events[-1]["id"]) == {"events.ALERT": [6]}


def test_last_event_id_resumes_with_no_loss_and_no_repeat(
    client: TestClient, local_bus: LocalBus
) -> None:
    all_ids = put_events(local_bus, "ALERT", range(10)) + put_events(
        local_bus, "JOB_STATUS", range(10)
    )
    params = {"types": "ALERT,JOB_STATUS", "from": "earliest"}
    first = events_of(client.get("/api/v1/subscribe", params={**params, "limit": 7}).text)
    assert len(first) == 7
    for cut in (0, 3, 6):  # resume after any event, not only the last one
        seen = [json.loads(e["data"])["header"]["id"] for e in first[: cut + 1]]
        r = client.get(
            "/api/v1/subscribe",
            params={**params, "idle": 0.3},
            headers={"Last-Event-ID": first[cut]["id"]},
        )
        rest = [json.loads(e["data"])["header"]["id"] for e in events_of(r.text)]
        assert len(rest) == 20 - (cut + 1)
        assert sorted(seen + rest) == sorted(all_ids)
    # event names follow the topics, whatever the partition
    assert {e["event"] for e in first} <= {"ALERT", "JOB_STATUS"}


def test_cursor_query_parameter_resumes_and_header_wins(
    client: TestClient, local_bus: LocalBus
) -> None:
    put_events(local_bus, "ALERT", range(4), partitions=1)
    params = {"types": "ALERT", "from": "earliest"}
    events = events_of(client.get("/api/v1/subscribe", params={**params, "limit": 4}).text)
    by_query = client.get(
        "/api/v1/subscribe", params={**params, "cursor": events[0]["id"], "idle": 0.2}
    )
    assert len(events_of(by_query.text)) == 3
    both = client.get(
        "/api/v1/subscribe",
        params={**params, "cursor": events[0]["id"], "idle": 0.2},
        headers={"Last-Event-ID": events[2]["id"]},
    )
    assert [json.loads(e["data"])["header"]["id"] for e in events_of(both.text)] == ["ALERT-3"]


def test_latest_skips_stored_events_and_first_id_resumes_from_subscription(
    client: TestClient, local_bus: LocalBus
) -> None:
    put_events(local_bus, "USER_OP", range(3))
    r = client.get("/api/v1/subscribe", params={"types": "USER_OP", "idle": 0.2})
    blocks = parse_sse(r.text)
    assert events_of(r.text) == []
    assert len(blocks) == 1
    assert "id" in blocks[0]
    assert blocks[0]["retry"] == "2000"
    new = put_events(local_bus, "USER_OP", range(3, 6))
    again = client.get(
        "/api/v1/subscribe",
        params={"types": "USER_OP", "idle": 0.3},
        headers={"Last-Event-ID": blocks[0]["id"]},
    )
    got = [json.loads(e["data"])["header"]["id"] for e in events_of(again.text)]
    assert sorted(got) == sorted(new)


def test_site_types_and_partitions_unknown_to_the_cursor(
    client: TestClient, local_bus: LocalBus
) -> None:
    put_events(local_bus, "BACKUP", range(4))
    old_cursor = encode_cursor({"events.BACKUP": [0]})  # from when it had one partition
    r = client.get(
        "/api/v1/subscribe",
        params={"types": "BACKUP", "from": "latest", "idle": 0.2},
        headers={"Last-Event-ID": old_cursor},
    )
    # partition 1 is not in the cursor: read from its start, so nothing is skipped
    assert len(events_of(r.text)) == 4


@pytest.mark.parametrize(
    ("params", "headers", "needle"),
    [
        ({"types": "ALERT,NOPE"}, {}, "NOPE"),
        ({"types": " , "}, {}, "no event type"),
        ({"types": "ALERT"}, {"Last-Event-ID": "garbage!"}, "not a cursor"),
    ],
)
def test_bad_requests_are_400_with_reason(
    client: TestClient, params: dict[str, str], headers: dict[str, str], needle: str
) -> None:
    r = client.get("/api/v1/subscribe", params=params, headers=headers)
    assert r.status_code == 400
    assert needle in r.json()["error"]
    if "NOPE" in needle:
        assert "ALERT" in r.json()["known"]
        assert "BACKUP" in r.json()["known"]


def test_live_stream_keepalive_and_cleanup_on_disconnect(
    ctx: NodeContext, client: TestClient, local_bus: LocalBus
) -> None:
    ctx.keepalive_s = 0.05
    state: ApiState = client.app.state.api  # type: ignore[attr-defined]
    local_bus.ensure_topic(TopicSpec("events.ALERT", 2))
    with client.stream("GET", "/api/v1/subscribe", params={"types": "ALERT"}) as r:
        lines = r.iter_lines()
        assert next(lines).startswith(": subscribed to ALERT")
        assert next(lines) == "retry: 2000"
        assert next(lines).startswith("id: ")
        assert state.subscribers == 1
        assert next(line for line in lines if line.startswith(":")) == ": keepalive"
        put_events(local_bus, "ALERT", range(2))
        data = [line for line in (next(lines) for _ in range(20)) if line.startswith("data:")]
        deadline = time.monotonic() + 30  # keepalives keep coming: bound the wait for data
        while len(data) < 2:
            assert time.monotonic() < deadline, f"only {data} after 30 s"
            line = next(lines)
            if line.startswith("data:"):
                data.append(line)
        assert {json.loads(d[6:])["header"]["id"] for d in data} == {"ALERT-0", "ALERT-1"}
    wait_for(lambda: state.subscribers == 0, what="the stream to close its consumer")
    assert ctx.registry.snapshot()["gauges"]["api.subscribers"] == 0


def test_tail_returns_last_or_first_messages(client: TestClient, local_bus: LocalBus) -> None:
    put_events(local_bus, "ALERT", range(5), partitions=1)
    last = client.get("/api/v1/topics/events.ALERT/tail", params={"count": 2}).json()
    assert [m["value"]["header"]["id"] for m in last] == ["ALERT-3", "ALERT-4"]
    assert last[0]["offset"] == 3
    assert last[0]["key"] == "h0"
    first = client.get(
        "/api/v1/topics/events.ALERT/tail", params={"count": 2, "from": "earliest"}
    ).json()
    assert [m["value"]["header"]["id"] for m in first] == ["ALERT-0", "ALERT-1"]
    assert client.get("/api/v1/topics/nope/tail").status_code == 404


# -- what a stream costs (issue 13) ---------------------------------------------------------------
def test_a_stream_reads_through_a_lean_connection(local_bus: LocalBus) -> None:
    # each stream had the factory's 16 MiB page cache and 256 MiB memory map: 200 streams
    # reading from the start took the node from 49 MB to 4.35 GB
    put_events(local_bus, "ALERT", range(3))
    reader = EventReader(local_bus, ["events.ALERT"], 2)
    assert reader.open("earliest", {}) is not None
    conn = reader._consumer._db.conn  # type: ignore[union-attr]
    assert conn.execute("PRAGMA cache_size").fetchone()[0] == -LEAN_CACHE_KIB
    assert conn.execute("PRAGMA mmap_size").fetchone()[0] == 0
    frames, n = reader.read(10)
    assert n == 3
    assert frames.count(b"data: ") == 3
    reader.close()
    factory = local_bus.consumer("g", ["events.ALERT"], "earliest")  # everyone else: as before
    assert factory._db.conn.execute("PRAGMA cache_size").fetchone()[0] == -16384
    factory.close()


def test_reads_are_bounded_in_bytes_and_never_wait(local_bus: LocalBus) -> None:
    local_bus.ensure_topic(TopicSpec("events.ALERT", 1))
    producer = local_bus.producer()
    big = 64 * 1024
    for i in range(40):
        event = Event(header=Header(id=f"big-{i}", time="t", type="ALERT"), body={"x": "y" * big})
        producer.produce("events.ALERT", encode_event(event), b"h")
    producer.flush()
    producer.close()
    reader = EventReader(local_bus, ["events.ALERT"], 1)
    reader.open("earliest", {})
    counts = []
    while (n := reader.read(MAX_BATCH)[1]) > 0:
        counts.append(n)
    assert sum(counts) == 40
    # the first read guesses small messages; from then on about BATCH_BYTES a read
    assert max(counts[2:]) <= BATCH_BYTES // big + 1, counts
    assert reader.read(MAX_BATCH) == (b"", 0)  # nothing left: an empty answer at once
    reader.close()


def test_the_watch_wakes_the_streams_of_a_topic_that_moved(local_bus: LocalBus) -> None:
    local_bus.ensure_topic(TopicSpec("events.ALERT", 2))
    local_bus.ensure_topic(TopicSpec("events.USER_OP", 2))
    watch = LocalWatch(local_bus)

    async def scenario() -> tuple[bool, bool]:
        alerts = ["events.ALERT"]
        await watch.wait(alerts, 0, 30)  # the watch's first look wakes everyone, once
        seen = watch.version(alerts)
        users = ["events.USER_OP"]
        other = asyncio.create_task(watch.wait(users, watch.version(users), 30))
        waiting = asyncio.create_task(watch.wait(alerts, seen, 30))
        for _ in range(100):  # each task registers before its first await: a yield or two
            if watch._waiting == 2:
                break
            await asyncio.sleep(0)
        assert watch._waiting == 2, "the two waits never registered"
        await asyncio.to_thread(put_events, local_bus, "ALERT", range(1))
        await asyncio.wait_for(waiting, 10)  # woken long before its 30 s
        moved = watch.version(alerts) != seen
        still = not other.done()
        other.cancel()
        return moved, still

    try:
        moved, other_still_waits = asyncio.run(scenario())
    finally:
        watch.close()
    assert moved
    assert other_still_waits


def test_subscriber_caps_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="max_subscribers_per_client: must be at least 1"):
        parse_config("http: {max_subscribers_per_client: 0}\n", "t.yaml")
