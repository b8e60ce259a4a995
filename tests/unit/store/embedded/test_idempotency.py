"""Stored once, by bus position: replays across writer lifetimes and a crash between the
commits of two days store nothing twice and lose nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

from tests.helpers.store_data import positions, sample_docs

from logfactory.store.engines.embedded import EmbeddedReader, EmbeddedWriter
from logfactory.store.engines.embedded.partitions import day_of
from logfactory.store.query.tree import MatchAll, Query

YEAR_S = 365 * 86_400.0


def _stored_ids(root: Path) -> Counter[str]:
    reader = EmbeddedReader(root)
    return Counter(doc.id for doc in reader.scan(Query(MatchAll()), 100_000, 60.0))


def test_the_same_positions_twice_across_two_writers(store_dir: Path) -> None:
    placed = positions(sample_docs(600, seed=11, days=2))
    first = EmbeddedWriter(store_dir, max_age_s=YEAR_S, max_size=0)
    assert first.add(placed[:400]) == 400
    first.close()
    second = EmbeddedWriter(store_dir, max_age_s=YEAR_S, max_size=0)
    assert second.add(placed) == 200  # only the ones the first never had
    assert second.add(placed) == 0  # pending ones count as held too
    second.close()
    counts = _stored_ids(store_dir)
    assert len(counts) == 600
    assert set(counts.values()) == {1}


def test_positions_from_other_partitions_are_not_confused(store_dir: Path) -> None:
    docs = sample_docs(100, seed=12)
    writer = EmbeddedWriter(store_dir, max_age_s=YEAR_S, max_size=0)
    assert writer.add(positions(docs[:50], topic="logs.parsed", partitions=1)) == 50
    # the same offsets on another topic are other records
    assert writer.add(positions(docs[50:], topic="events.x", partitions=1)) == 50
    writer.close()
    assert sum(_stored_ids(store_dir).values()) == 100


CHILD = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from tests.helpers.store_data import positions, sample_docs
    from logfactory.store.engines.embedded import writer as module

    committed = []
    real_commit = module._Day.commit

    def commit_then_die(day):
        real_commit(day)
        committed.append(day.name)
        if len(committed) == 1 and day.pending == {}:
            os._exit(9)  # the first day is committed, the second never will be

    module._Day.commit = commit_then_die
    writer = module.EmbeddedWriter(Path(sys.argv[1]), max_age_s=1e9, max_size=0)
    writer.add(positions(sample_docs(400, seed=13, days=2)))
    writer.commit()
    """
)


def test_a_crash_between_two_day_commits(store_dir: Path) -> None:
    docs = sample_docs(400, seed=13, days=2)
    days = sorted({day_of(doc.received) for doc in docs})
    assert len(days) == 2
    root = Path(__file__).resolve().parents[4]
    env = {**os.environ, "PYTHONPATH": f"{root / 'src'}{os.pathsep}{root}"}
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(store_dir)], env=env, capture_output=True, timeout=120
    )
    assert child.returncode == 9, child.stderr.decode()
    after_crash = _stored_ids(store_dir)
    first_day = [d for d in docs if day_of(d.received) == days[0]]
    assert set(after_crash) == {d.id for d in first_day}  # the second day's commit never ran

    writer = EmbeddedWriter(store_dir, max_age_s=YEAR_S, max_size=0)  # the crash left no lock
    assert writer.add(positions(docs)) == len(docs) - len(first_day)
    writer.close()
    counts = _stored_ids(store_dir)
    assert set(counts) == {d.id for d in docs}
    assert set(counts.values()) == {1}
