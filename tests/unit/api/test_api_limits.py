"""Limits against abuse in the API (issue 15): the query rate per caller (the bucket on a
fake clock, then the routes it guards), SSE streams per credential, and the counters of every
refusal in /metrics. Callers are told apart by their API tokens (tests/helpers/clients.bearer)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers.clients import TestClient, bearer, make_client

from logfactory.access import Role
from logfactory.api import NodeContext
from logfactory.api.metrics import LIMITS
from logfactory.api.ratelimit import QueryLimiter
from logfactory.api.sse_admission import Refusal, Slot, SubscriberSlots
from logfactory.bus.base import TopicSpec
from logfactory.bus.local import LocalBus
from logfactory.config import ConfigError, parse_config


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


# -- the bucket ---------------------------------------------------------------------------
def test_a_caller_gets_its_burst_then_the_rate() -> None:
    clock = Clock()
    limiter = QueryLimiter(rate=2.0, burst=3, clock=clock)
    assert [limiter.take("token:a") for _ in range(3)] == [None, None, None]
    assert limiter.take("token:a") == pytest.approx(0.5)  # a token every half second
    clock.now += 0.5
    assert limiter.take("token:a") is None
    assert limiter.take("token:a") == pytest.approx(0.5)
    clock.now += 10  # a long pause refills the burst, not more
    assert [limiter.take("token:a") for _ in range(4)][-1] == pytest.approx(0.5)


def test_refused_queries_do_not_spend_and_other_callers_are_untouched() -> None:
    clock = Clock()
    limiter = QueryLimiter(rate=1.0, burst=1, clock=clock)
    assert limiter.take("token:a") is None
    for _ in range(100):  # hammering while refused does not push the wait further
        assert limiter.take("token:a") == pytest.approx(1.0)
    assert limiter.take("token:b") is None
    assert limiter.take("addr:192.0.2.9") is None
    clock.now += 1.0
    assert limiter.take("token:a") is None


def test_the_buckets_are_bounded_and_the_least_recent_one_goes() -> None:
    clock = Clock()
    limiter = QueryLimiter(rate=1.0, burst=1, clock=clock, max_keys=100)
    limiter.take("token:a")
    for i in range(10_000):
        limiter.take(f"addr:10.0.{i >> 8}.{i & 255}")
        assert len(limiter) <= 100
    assert limiter.take("token:a") is None  # dropped: a full bucket again (at most a burst)
    assert limiter.take("token:a") == pytest.approx(1.0)


def test_query_limits_must_make_sense() -> None:
    with pytest.raises(ValueError, match="rate"):
        QueryLimiter(rate=0, burst=1)
    with pytest.raises(ConfigError, match="query_burst: must be at least 1"):
        parse_config("http: {query_burst: 0}\n", "t.yaml")


# -- the routes it guards -----------------------------------------------------------------
SLOW = "http: {query_rate: 0.01, query_burst: 2, max_subscribers_per_credential: 2}\n"
"""Two queries, then one every 100 s: a third at once is refused however slow the machine."""


@pytest.fixture
def client(tmp_path: Path, local_bus: LocalBus) -> Iterator[tuple[TestClient, NodeContext]]:
    local_bus.ensure_topic(TopicSpec("logs.parsed", 1))
    local_bus.ensure_topic(TopicSpec("events.ALERT", 1))
    c, ctx = make_client(tmp_path, local_bus, parse_config(SLOW, str(tmp_path / "n.yaml")))
    with c:
        yield c, ctx
    ctx.producer.close()


def limited(ctx: NodeContext, limit: str) -> int:
    return int(ctx.registry.snapshot()["counters"].get("api", {}).get(f"limited_{limit}", 0))


def metric(client: TestClient, limit: str) -> str:
    lines = client.get("/metrics").text.splitlines()
    wanted = f'logfactory_api_limited_total{{limit="{limit}"}} '
    return str(next(line for line in lines if line.startswith(wanted)).split()[-1])


@pytest.mark.parametrize(
    "path", ["/api/v1/topics/logs.parsed/tail?count=5", "/api/v1/patterns?limit=5"]
)
def test_an_expensive_query_over_the_rate_is_429_and_others_are_served(
    client: tuple[TestClient, NodeContext], path: str
) -> None:
    c, ctx = client
    mine = bearer(ctx, Role.VIEWER)
    assert [c.get(path, headers=mine).status_code for _ in range(2)] == [200, 200]

    refused = c.get(path, headers=mine)

    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "100"  # whole seconds until a query is back
    assert "too many queries" in refused.json()["error"]
    assert c.get(path, headers=bearer(ctx, Role.VIEWER)).status_code == 200  # another token
    assert c.get(path).status_code == 200  # the client's own admin token: apart too
    assert c.get("/api/v1/stats").status_code == 200  # not an expensive query: not limited
    assert limited(ctx, "query") == 1
    assert metric(c, "query") == "1.0"


def test_tails_and_pattern_lists_share_one_bucket_per_caller(
    client: tuple[TestClient, NodeContext],
) -> None:
    c, _ = client
    assert c.get("/api/v1/topics/logs.parsed/tail").status_code == 200
    assert c.get("/api/v1/patterns").status_code == 200
    assert c.get("/api/v1/topics/logs.parsed/tail").status_code == 429  # same credential
    assert c.get("/api/v1/patterns").status_code == 429


def test_the_openapi_description_declares_the_429s(client: tuple[TestClient, NodeContext]) -> None:
    paths = client[0].get("/openapi.json").json()["paths"]
    for path in ("/api/v1/topics/{topic}/tail", "/api/v1/patterns", "/api/v1/subscribe"):
        assert "429" in paths[path]["get"]["responses"], path


# -- SSE streams per credential -----------------------------------------------------------
def test_streams_per_credential_are_counted_apart_from_addresses() -> None:
    deltas: list[int] = []
    slots = SubscriberSlots(total=10, per_client=5, on_delta=deltas.append, per_credential=2)
    held = [slots.acquire(f"192.0.2.{i}", "token:a") for i in range(2)]  # two machines
    first = held[0]
    assert isinstance(first, Slot)
    assert isinstance(held[1], Slot)

    third = slots.acquire("192.0.2.77", "token:a")

    assert isinstance(third, Refusal)
    assert (third.status, third.limit) == (429, "sse_credential")
    assert "per token or login" in third.error
    assert isinstance(slots.acquire("192.0.2.77", "token:b"), Slot)
    for _ in range(4):  # anonymous streams are bounded per address only
        assert isinstance(slots.acquire("192.0.2.88"), Slot)
    assert slots.credentials() == {"token:a": 2, "token:b": 1}
    first.release()
    first.release()  # given back once, however often
    assert slots.credentials() == {"token:a": 1, "token:b": 1}
    assert isinstance(slots.acquire("192.0.2.77", "token:a"), Slot)
    assert sum(deltas) == slots.count == 7  # 2 + 1 + 4 anonymous, one released, one more


def test_each_stream_refusal_names_its_limit() -> None:
    slots = SubscriberSlots(total=2, per_client=1, on_delta=lambda n: None, per_credential=1)
    assert isinstance(slots.acquire("192.0.2.1", "token:a"), Slot)
    refusals = [
        slots.acquire("192.0.2.1", "token:b"),  # this address holds its one
        slots.acquire("192.0.2.2", "token:a"),  # this credential holds its one
    ]
    assert isinstance(slots.acquire("192.0.2.3", "token:c"), Slot)
    refusals.append(slots.acquire("192.0.2.4", "token:d"))  # the node holds its two
    assert [(r.status, r.limit) for r in refusals if isinstance(r, Refusal)] == [
        (429, "sse_client"),
        (429, "sse_credential"),
        (503, "sse_total"),
    ]


@pytest.mark.timeout(60)
def test_a_credential_over_its_streams_gets_429_and_another_is_admitted(
    client: tuple[TestClient, NodeContext],
) -> None:
    c, ctx = client
    token = bearer(ctx, Role.VIEWER)
    params = {"types": "ALERT"}
    with (
        c.stream("GET", "/api/v1/subscribe", params=params, headers=token) as one,
        c.stream("GET", "/api/v1/subscribe", params=params, headers=token) as two,
    ):
        assert one.status_code == two.status_code == 200

        third = c.get("/api/v1/subscribe", params=params, headers=token)

        assert third.status_code == 429
        assert third.headers["retry-after"].isdigit()
        assert "per token or login" in third.json()["error"]
        other = bearer(ctx, Role.VIEWER)
        short = {"types": "ALERT", "idle": "0.05"}  # ends by itself once quiet
        assert c.get("/api/v1/subscribe", params=short, headers=other).status_code == 200
    assert limited(ctx, "sse_credential") == 1
    assert metric(c, "sse_credential") == "1.0"


def test_every_limit_is_in_metrics_before_it_is_ever_reached(
    client: tuple[TestClient, NodeContext],
) -> None:
    c, _ = client
    for limit in LIMITS:
        assert metric(c, limit) == "0.0"
    text = c.get("/metrics").text
    assert 'logfactory_login_lockouts_total{kind="user"} 0.0' in text
    assert 'logfactory_login_lockouts_total{kind="address"} 0.0' in text


def test_login_lock_outs_and_refusals_reach_metrics(
    client: tuple[TestClient, NodeContext],
) -> None:
    """Five wrong passwords lock the name and the address: the sixth try is a 429 before any
    password is checked, and both lock-outs and the refusal are counted."""
    c, _ = client
    state = c.app.state.api  # type: ignore[attr-defined]
    assert state.login_throttle.max_failures == 5  # http.login_max_failures
    assert state.login_throttle.lockout_s == 60.0  # http.login_lockout
    wrong = {"user": "alice", "password": "not her password"}
    assert [c.post("/api/v1/auth/login", json=wrong).status_code for _ in range(5)] == [401] * 5

    locked = c.post("/api/v1/auth/login", json=wrong)

    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) == 60
    text = c.get("/metrics").text
    assert 'logfactory_login_lockouts_total{kind="user"} 1.0' in text
    assert 'logfactory_login_lockouts_total{kind="address"} 1.0' in text
    assert metric(c, "login") == "1.0"


def test_the_limits_live_once_per_app(client: tuple[TestClient, NodeContext]) -> None:
    c, _ = client
    state = c.app.state.api  # type: ignore[attr-defined]
    assert state.query_limiter.rate == 0.01
    assert state.query_limiter.burst == 2
    c.get("/api/v1/patterns")
    c.get("/api/v1/topics/logs.parsed/tail")
    assert len(state.query_limiter) == 1  # both routes spent from the app's one limiter
    assert c.get("/api/v1/patterns").status_code == 429
