"""A stats write that fails is reported and retried; the writer recovers when the cause goes.

Why: one EROFS or EMFILE used to kill the writer thread, and health stayed 503 ("has not
reported") with frozen stats until a restart. The fault here is the stats directory replaced by
a file (tests run as root, for whom a read-only mode stops no write), then put back.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from tests.helpers.waiting import wait_for

from logfactory.stats import StatsRegistry, StatsWriter, read_all_stats

BOUND_S = 30.0  # generous: the writer ticks every 0.02 s


def test_the_writer_survives_a_failing_directory_and_writes_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stats_dir = tmp_path / "stats"
    registry = StatsRegistry("node")
    writer = StatsWriter(registry, stats_dir, interval=0.02).start()
    snapshot = stats_dir / "node.json"
    try:
        assert snapshot.exists()
        shutil.rmtree(stats_dir)
        stats_dir.write_text("not a directory")  # every write now fails (ENOTDIR / EEXIST)
        wait_for(lambda: "stats" in registry.problems(), BOUND_S, "the failure is reported")
        registry.add("stage:decode", "received", 7)
        problem = registry.problems()["stats"]
        assert str(snapshot) in problem
        assert "retrying" in problem
        wait_for(lambda: writer._failures >= 5, BOUND_S, "more attempts, still logged only once")
        assert sum(r.levelno == logging.ERROR for r in caplog.records) == 1

        stats_dir.unlink()  # the cause goes: the writer makes the directory again
        wait_for(snapshot.exists, BOUND_S, "the snapshot is written again")
        wait_for(lambda: "stats" not in registry.problems(), BOUND_S, "the problem is cleared")
        assert writer._thread.is_alive()
        [snap] = read_all_stats(stats_dir)
        assert snap["counters"]["stage:decode"]["received"] == 7
        # the first snapshot written again still carries the problem (it clears once that
        # write succeeded); the next one, a tick later, must not
        wait_for(
            lambda: "stats" not in json.loads(snapshot.read_text())["problems"],
            BOUND_S,
            "a snapshot without the problem",
        )
    finally:
        writer.stop()


def test_a_directory_that_cannot_be_made_at_start_is_reported_not_raised(
    tmp_path: Path,
) -> None:
    (tmp_path / "file").write_text("")
    registry = StatsRegistry("factory-1")
    writer = StatsWriter(registry, tmp_path / "file" / "stats", interval=0.02).start()
    try:
        assert "stats" in registry.problems()
    finally:
        writer.stop()  # reports again, does not raise either
    assert "stats" in registry.problems()
    assert read_all_stats(tmp_path / "file" / "stats") == []
