"""The ingest tests' client: the API on a local bus with an in-process producer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers.clients import TestClient, make_client

from logfactory.api import NodeContext
from logfactory.bus.local import LocalBus
from logfactory.config import Config


@pytest.fixture
def client(tmp_path: Path, local_bus: LocalBus) -> Iterator[tuple[TestClient, NodeContext]]:
    c, ctx = make_client(tmp_path, local_bus, Config())
    with c:
        yield c, ctx
    ctx.producer.close()
