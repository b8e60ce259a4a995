"""The store behind the search routes: one reader per app, opened at the first query and closed
with the app; a store that cannot answer is a 503 with ``Retry-After`` on every route; searches
count against the caller's query rate."""

from __future__ import annotations

import threading
from pathlib import Path

import msgspec
import pytest
from tests.helpers.clients import make_client
from tests.helpers.search_api import SearchWorld, build_world

from logfactory.access import Role
from logfactory.api.store_handle import StoreHandle
from logfactory.bus.local import LocalBus
from logfactory.errors import StoreUnavailable
from logfactory.store.engines.embedded import EmbeddedReader
from logfactory.store.open import store_path
from logfactory.store.query.tree import MatchAll, Query


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> SearchWorld:
    return build_world(tmp_path_factory.mktemp("availability"), n=50)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/search",
        "/api/v1/aggregate?op=count",
        "/api/v1/aggregate?op=histogram",
        "/api/v1/export",
    ],
)
def test_a_store_that_cannot_answer_is_a_503_with_retry_after(
    world: SearchWorld, tmp_path: Path, path: str
) -> None:
    not_a_folder = tmp_path / "store-file"
    not_a_folder.write_text("this is no store\n")
    with world.client(tmp_path, path=str(not_a_folder)) as (client, ctx):
        r = client.get(path)
        exported = ctx.access.audit_trail(action="store_exported")
    assert r.status_code == 503, r.text
    assert r.headers["Retry-After"] == "5"
    assert "retry" in r.json()["error"]
    assert exported == []  # nothing left the node


def test_searches_count_against_the_query_rate(world: SearchWorld, tmp_path: Path) -> None:
    config = world.config()
    slow = msgspec.structs.replace(config.http, query_rate=0.001, query_burst=2)
    bus = LocalBus(tmp_path / "bus")
    client, ctx = make_client(
        tmp_path, bus, msgspec.structs.replace(config, http=slow), role=Role.VIEWER
    )
    with client:
        answers = [client.get("/api/v1/search").status_code for _ in range(3)]
        limited = client.get("/api/v1/aggregate", params={"op": "count"})
    ctx.producer.close()
    ctx.access.close()
    bus.close()
    assert answers == [200, 200, 429]
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1


def test_one_reader_for_every_thread_closed_once(world: SearchWorld) -> None:
    config = world.config()
    opened: list[EmbeddedReader] = []

    def opener(_: object) -> EmbeddedReader:
        reader = EmbeddedReader(store_path(config))
        opened.append(reader)
        return reader

    handle = StoreHandle(config, opener)
    seen: list[object] = []
    threads = [threading.Thread(target=lambda: seen.append(handle.reader())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(opened) == 1
    assert all(r is opened[0] for r in seen)
    assert len(seen) == 8
    assert opened[0].count(Query(MatchAll())) == len(world.docs)
    handle.close()
    with pytest.raises(StoreUnavailable, match="stopping"):
        handle.reader()
    handle.close()  # a second close is harmless
