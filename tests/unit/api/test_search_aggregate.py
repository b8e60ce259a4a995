"""``/api/v1/aggregate`` over a real embedded store: counts, top values, distinct values and
histograms equal what the oracle counts; the histogram's window and interval defaults; the 400s
of an aggregate that cannot be made."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from pathlib import Path

import pytest
from tests.helpers.search_api import HOUR_NS, SearchWorld, build_world, oracle_ids

from logfactory.api.search_models import AggregateAnswer
from logfactory.store.document import parse_time
from logfactory.store.query.intervals import format_interval


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> SearchWorld:
    return build_world(tmp_path_factory.mktemp("aggregate"))


def test_count_is_the_number_of_matches(world: SearchWorld, tmp_path: Path) -> None:
    with world.client(tmp_path) as (client, _):
        r = client.get("/api/v1/aggregate", params={"op": "count", "q": "severity:error"})
    assert r.status_code == 200, r.text
    AggregateAnswer.model_validate(r.json())
    assert r.json()["value"] == len(oracle_ids(world, "severity:error")) > 0


@pytest.mark.parametrize("field", ["host", "severity", "kind"])
def test_top_values_are_the_most_frequent(world: SearchWorld, tmp_path: Path, field: str) -> None:
    counts = Counter(getattr(d, field) for d in world.docs if getattr(d, field))
    missing = sum(1 for d in world.docs if not getattr(d, field))
    with world.client(tmp_path) as (client, _):
        r = client.get("/api/v1/aggregate", params={"op": "top", "field": field, "size": 3})
    body = r.json()
    AggregateAnswer.model_validate(body)
    got = {b["key"]: b["count"] for b in body["buckets"]}
    assert len(got) == min(3, len(counts))
    assert all(counts[key] == n for key, n in got.items()), (got, counts)
    assert sorted(got.values(), reverse=True) == sorted(counts.values(), reverse=True)[:3]
    assert body["missing"] == missing
    assert body["other"] == len(world.docs) - missing - sum(got.values())
    assert body["field"] == field


def test_distinct_counts_different_values(world: SearchWorld, tmp_path: Path) -> None:
    with world.client(tmp_path) as (client, _):
        r = client.get("/api/v1/aggregate", params={"op": "distinct", "field": "host"})
    assert r.json()["value"] == len({d.host for d in world.docs})


def test_histogram_counts_each_bucket(world: SearchWorld, tmp_path: Path) -> None:
    start = world.now_ns - 36 * HOUR_NS
    since = time.strftime("%Y-%m-%dT%H:00:00Z", time.gmtime(start / 1e9))
    with world.client(tmp_path) as (client, _):
        r = client.get(
            "/api/v1/aggregate",
            params={"op": "histogram", "since": since, "until": "now", "interval": "1h"},
        )
    assert r.status_code == 200, r.text
    body = r.json()
    AggregateAnswer.model_validate(body)
    assert body["interval"] == "1h"
    assert body["interval_ns"] == HOUR_NS
    keys = [parse_time(b["key"]) for b in body["buckets"]]
    assert keys == sorted(keys)
    assert all(b - a == HOUR_NS for a, b in itertools.pairwise(keys))
    per_bucket = Counter((d.time - keys[0]) // HOUR_NS for d in world.docs if d.time >= keys[0])
    assert [b["count"] for b in body["buckets"]] == [per_bucket[i] for i in range(len(keys))]
    assert sum(b["count"] for b in body["buckets"]) == len(world.docs)


def test_histogram_defaults_to_the_last_day_and_a_round_interval(
    world: SearchWorld, tmp_path: Path
) -> None:
    with world.client(tmp_path) as (client, _):
        r = client.get("/api/v1/aggregate", params={"op": "histogram"})
    body = r.json()
    span = parse_time(body["end"]) - parse_time(body["start"])
    assert abs(span - 24 * HOUR_NS) < 10**6  # microseconds as shown
    assert 30 <= len(body["buckets"]) <= 130
    assert format_interval(body["interval_ns"]) == body["interval"]
    in_window = oracle_ids(world, "", since="-24h")
    assert sum(b["count"] for b in body["buckets"]) == len(in_window)


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"op": "top"}, "field"),
        ({"op": "top", "field": "message"}, "message"),
        ({"op": "histogram", "interval": "1s", "since": "-7d"}, "buckets"),
        ({"op": "histogram", "since": "now", "until": "-1h"}, "before"),
        ({"op": "count", "q": "(oops"}, ""),
    ],
)
def test_an_aggregate_that_cannot_be_made_is_a_400(
    world: SearchWorld, tmp_path: Path, params: dict[str, str], needle: str
) -> None:
    with world.client(tmp_path) as (client, _):
        r = client.get("/api/v1/aggregate", params=params)
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]


def test_an_unknown_op_is_refused(world: SearchWorld, tmp_path: Path) -> None:
    with world.client(tmp_path) as (client, _):
        r = client.get("/api/v1/aggregate", params={"op": "median"})
    assert r.status_code == 422
