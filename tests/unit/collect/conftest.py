"""Fixtures the collector tests share: a logs directory (the bus with logs.raw ready and the
agents a test started are tests/conftest.py's, shared with the integration tests)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    d = tmp_path / "logs"
    d.mkdir()
    return d
