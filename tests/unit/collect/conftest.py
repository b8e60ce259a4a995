"""Fixtures the collector tests share: the bus with logs.raw ready, and a logs directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from logfactory.bus.base import TopicSpec
from logfactory.bus.local import LocalBus
from logfactory.collect.agent import RAW_TOPIC


@pytest.fixture
def bus(local_bus: LocalBus) -> LocalBus:
    local_bus.ensure_topic(TopicSpec(RAW_TOPIC, 4))
    return local_bus


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    d = tmp_path / "logs"
    d.mkdir()
    return d
