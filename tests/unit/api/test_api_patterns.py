"""``/api/v1/patterns``: list with filters and pages, lookup through lineage, reviews that land on
the compacted topic (and so in factory workers), who may review, and the snapshot cache."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.helpers import clients
from tests.helpers.clients import TestClient
from tests.helpers.waiting import wait_for

from logfactory.access import Role
from logfactory.api import NodeContext
from logfactory.api.routes.patterns import LibraryCache, ReviewError, parse_review
from logfactory.bus.local import LocalBus
from logfactory.config import Config, parse_config
from logfactory.factory.patterns.library import PatternLibrary
from logfactory.factory.patterns.topic import load_library, save_changes
from logfactory.factory.worker import FactoryWorker
from logfactory.stats import StatsRegistry
from logfactory.topics import ensure_topics

SEC = 1_000_000_000


def seed_library(bus: LocalBus) -> dict[str, str]:
    """Write a small library the way ``patterns learn`` does; returns template -> id, plus
    ``"alice"`` -> the id that generalised into ``session closed for user=<*>``."""
    library = PatternLibrary()
    alice = library.observe("syslog", "session closed for user=alice", 1 * SEC).pattern_id
    for i, user in enumerate(("bob", "carol")):
        library.observe("syslog", f"session closed for user={user}", (2 + i) * SEC)
    library.observe("syslog", "Disk /dev/sda1 FULL", 5 * SEC)
    library.observe("syslog", "Disk /dev/sdb2 FULL", 6 * SEC)
    library.observe("app", "request served in 12 ms", 4 * SEC)
    save_changes(bus, library)
    ids = {e.template: e.id for e in library.entries()}
    ids["alice"] = alice
    return ids


def make_client(
    tmp_path: Path, bus: LocalBus, config: Config, role: Role | None = Role.ADMIN
) -> tuple[TestClient, NodeContext]:
    ensure_topics(bus, config)
    return clients.make_client(tmp_path, bus, config, role=role)


@pytest.fixture
def client(tmp_path: Path, local_bus: LocalBus) -> Iterator[tuple[TestClient, dict[str, str]]]:
    c, ctx = make_client(tmp_path, local_bus, Config())
    ids = seed_library(local_bus)
    with c:
        yield c, ids
    ctx.producer.close()


def templates(body: dict[str, Any]) -> list[str]:
    return [p["template"] for p in body["patterns"]]


def test_list_is_newest_first_with_filters_and_pages(
    client: tuple[TestClient, dict[str, str]],
) -> None:
    c, _ids = client
    everything = c.get("/api/v1/patterns").json()
    assert everything["total"] == 3
    assert templates(everything) == [
        "Disk <*> FULL",
        "request served in <*> ms",
        "session closed for user=<*>",
    ]
    first = everything["patterns"][0]
    assert first["status"] == "new"
    assert first["lineage"] == []
    assert first["reason"] is None
    assert first["count"] == 2
    assert first["last_seen"] == 6 * SEC
    assert templates(c.get("/api/v1/patterns?workshop=app").json()) == ["request served in <*> ms"]
    assert templates(c.get("/api/v1/patterns?q=disK%20%3C").json()) == ["Disk <*> FULL"]
    page = c.get("/api/v1/patterns?limit=1&offset=1").json()
    assert page["total"] == 3
    assert templates(page) == ["request served in <*> ms"]
    assert c.get("/api/v1/patterns?status=alert").json() == {"total": 0, "patterns": []}
    bad = c.get("/api/v1/patterns?status=bad")
    assert bad.status_code == 400
    assert "status" in bad.json()["error"]
    assert c.get("/api/v1/patterns?limit=0").status_code == 422


def test_get_follows_lineage_and_unknown_is_404(client: tuple[TestClient, dict[str, str]]) -> None:
    c, ids = client
    general = ids["session closed for user=<*>"]
    assert c.get(f"/api/v1/patterns/{general}").json()["lineage"] == [ids["alice"]]
    via_old = c.get(f"/api/v1/patterns/{ids['alice']}")
    assert via_old.status_code == 200
    assert via_old.json()["id"] == general
    missing = c.get("/api/v1/patterns/p-nope")
    assert missing.status_code == 404
    assert missing.json() == {"error": "no pattern 'p-nope'"}


def test_review_is_stored_on_the_bus_and_seen_at_once(
    client: tuple[TestClient, dict[str, str]], local_bus: LocalBus
) -> None:
    c, ids = client
    disk = ids["Disk <*> FULL"]
    assert c.get("/api/v1/patterns?status=alert").json()["total"] == 0  # fills the cache
    r = c.post(
        f"/api/v1/patterns/{disk}/review",
        json={"status": "alert", "reason": "a disk is full", "severity": "critical"},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["reason"], r.json()["severity"]) == (
        "alert",
        "a disk is full",
        "critical",
    )
    stored = load_library(local_bus).get(disk)
    assert stored is not None
    assert (stored.status, stored.reason) == ("alert", "a disk is full")
    # the cache was dropped by the review: no waiting for it to expire
    assert templates(c.get("/api/v1/patterns?status=alert").json()) == ["Disk <*> FULL"]
    # an old id reviews the entry it generalised into; alert defaults to severity high
    old = c.post(
        f"/api/v1/patterns/{ids['alice']}/review", json={"status": "alert", "reason": "who?"}
    )
    assert old.json()["id"] == ids["session closed for user=<*>"]
    assert old.json()["severity"] == "high"
    back = c.post(f"/api/v1/patterns/{disk}/review", json={"status": "normal"})
    assert (back.json()["status"], back.json()["reason"], back.json()["severity"]) == (
        "normal",
        None,
        None,
    )


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"status": "ok"}', "'status' must be one of new, normal, alert"),
        (b'{"status": "alert"}', "an alert needs a 'reason'"),
        (b'{"status": "alert", "reason": "  "}', "an alert needs a 'reason'"),
        (b'{"status": "alert", "reason": 5}', "'reason' must be a string"),
        (b'{"status": "alert", "reason": "x", "severity": "huge"}', "'severity' must be one of"),
        (b'{"status": "normal", "severity": "low"}', "apply to status alert only"),
        (b'{"status": "normal", "why": "x"}', "unknown field(s) why"),
        (b"[1]", "must be a JSON object"),
        (b"{nope", "must be a JSON object"),
    ],
)
def test_bad_reviews_are_400_and_change_nothing(
    client: tuple[TestClient, dict[str, str]], local_bus: LocalBus, body: bytes, error: str
) -> None:
    c, ids = client
    disk = ids["Disk <*> FULL"]
    json_type = {"content-type": "application/json"}
    r = c.post(f"/api/v1/patterns/{disk}/review", content=body, headers=json_type)
    assert r.status_code == 400
    assert error in r.json()["error"]
    stored = load_library(local_bus).get(disk)
    assert stored is not None
    assert stored.status == "new"


def test_reviewing_an_unknown_id_is_404(client: tuple[TestClient, dict[str, str]]) -> None:
    c, _ids = client
    r = c.post("/api/v1/patterns/p-nope/review", json={"status": "normal"})
    assert r.status_code == 404
    assert r.json() == {"error": "no pattern 'p-nope'"}


def test_a_review_over_http_reaches_factory_workers(tmp_path: Path, local_bus: LocalBus) -> None:
    config = parse_config(
        f"node: {{name: t, data_dir: {tmp_path / 'd'}}}\nworkshops:\n  syslog: {{format: syslog}}\n"
    )
    c, ctx = make_client(tmp_path, local_bus, config)
    ids = seed_library(local_bus)
    disk = ids["Disk <*> FULL"]
    running = FactoryWorker(config, local_bus, StatsRegistry("w1"))
    try:
        seen = running.library.get(disk)
        assert seen is not None
        assert seen.status == "new"
        with c:
            r = c.post(
                f"/api/v1/patterns/{disk}/review", json={"status": "alert", "reason": "disk full"}
            )
        assert r.status_code == 200, r.text

        def running_has_it() -> bool:
            running.sync_library()  # what the worker's loop does every 0.5 s
            entry = running.library.get(disk)
            return entry is not None and (entry.status, entry.reason) == ("alert", "disk full")

        wait_for(running_has_it, timeout=5, what="the running worker to apply the review")
        started_after = FactoryWorker(config, local_bus, StatsRegistry("w2"))
        try:
            entry = started_after.library.get(disk)
            assert entry is not None
            assert (entry.status, entry.severity) == ("alert", "high")
        finally:
            started_after.close()
    finally:
        running.close()
        ctx.producer.close()


def test_reviews_need_an_operator_and_a_source_token_is_not_one(
    tmp_path: Path, local_bus: LocalBus
) -> None:
    """A review changes what the factory alerts on: it needs the role operator. An http source's
    token (role ingest) once let a review through; now it is refused like a viewer's, and no
    credential or a wrong one is a 401. Nothing refused reaches the library."""
    config = parse_config("sources:\n  - {type: http, name: web, token: s3cret}\n", "t.yaml")
    c, ctx = make_client(tmp_path, local_bus, config, role=None)
    ids = seed_library(local_bus)
    disk = ids["Disk <*> FULL"]
    url = f"/api/v1/patterns/{disk}/review"
    review = {"status": "normal"}
    viewer = clients.bearer(ctx, Role.VIEWER)
    with c:
        denied = c.post(url, json=review)
        assert denied.status_code == 401
        assert denied.headers["www-authenticate"] == "Bearer"
        wrong = c.post(url, json=review, headers={"Authorization": "Bearer x"})
        assert wrong.status_code == 401
        source = c.post(url, json=review, headers={"Authorization": "Bearer s3cret"})
        assert source.status_code == 403
        assert c.post(url, json=review, headers=viewer).status_code == 403
        assert c.get("/api/v1/patterns", headers=viewer).json()["total"] == 3  # a viewer reads
        stored = load_library(local_bus).get(disk)
        assert stored is not None
        assert stored.status == "new"
        ok = c.post(url, json=review, headers=clients.bearer(ctx, Role.OPERATOR))
        assert ok.status_code == 200
        assert ok.json()["status"] == "normal"
    ctx.producer.close()


def test_cache_loads_once_per_ttl_and_not_across_an_invalidation() -> None:
    loads: list[int] = []

    def load() -> PatternLibrary:
        loads.append(1)
        return PatternLibrary()

    cache = LibraryCache(load, ttl_s=3600)
    first = cache.get()
    assert cache.get() is first
    assert len(loads) == 1
    cache.invalidate()
    assert cache.get() is not first
    assert len(loads) == 2

    calls = 0

    def load_during_review() -> PatternLibrary:
        nonlocal calls
        calls += 1
        if calls == 1:
            racing.invalidate()  # a review finished while this load was reading the topic
        return PatternLibrary()

    racing = LibraryCache(load_during_review, ttl_s=3600)
    stale = racing.get()  # served to its caller, but not kept
    fresh = racing.get()
    assert fresh is not stale
    assert calls == 2
    assert racing.get() is fresh
    assert calls == 2


def test_concurrent_readers_share_one_load() -> None:
    entered, release = threading.Event(), threading.Event()
    loads: list[int] = []

    def slow_load() -> PatternLibrary:
        loads.append(1)
        entered.set()
        release.wait(5)
        return PatternLibrary()

    cache = LibraryCache(slow_load, ttl_s=3600)
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get())) for _ in range(4)]
    for t in threads:
        t.start()
    assert entered.wait(5)
    release.set()
    for t in threads:
        t.join(5)
    assert len(results) == 4
    assert len(loads) == 1
    assert all(r is results[0] for r in results)


def test_parse_review_normalises_alerts() -> None:
    review = parse_review(b'{"status": "alert", "reason": "  overheating  "}')
    assert (review.status, review.reason, review.severity) == ("alert", "overheating", "high")
    with pytest.raises(ReviewError):
        parse_review(b'{"status": null}')
