"""Retention: whole arrival days dropped by age, then the oldest days while over the size."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tests.helpers.store_data import DAY_NS, SAMPLE_START_NS, positions, sample_docs
from tests.helpers.store_oracle import expected_ids

from logfactory.store.engines.embedded import EmbeddedReader, EmbeddedWriter
from logfactory.store.engines.embedded.partitions import day_dirs, day_of, dir_bytes
from logfactory.store.query.tree import MatchAll, Query

DAY_S = 86_400.0


def _fill(root: Path, max_age_s: float, max_size: int) -> tuple[EmbeddedWriter, Counter[str]]:
    docs = sample_docs(1000, seed=31, days=5)
    writer = EmbeddedWriter(root, max_age_s=max_age_s, max_size=max_size)
    writer.add(positions(docs))
    writer.commit()
    return writer, Counter(day_of(doc.received) for doc in docs)


def test_age_drops_whole_days_by_arrival(store_dir: Path) -> None:
    writer, per_day = _fill(store_dir, 2 * DAY_S, 0)
    days = sorted(per_day)
    reader = EmbeddedReader(store_dir)
    assert reader.count(Query(MatchAll())) == 1000  # the reader has every day open now
    now = SAMPLE_START_NS + 4 * DAY_NS + 3_600 * 10**9  # an hour into the fifth day
    before = dir_bytes(store_dir)
    report = writer.apply_retention(now)
    assert report.dropped_partitions == tuple(days[:2])  # ended 2 days or more before now
    assert report.dropped_docs == per_day[days[0]] + per_day[days[1]]
    assert 0 < report.bytes_freed <= before
    assert day_dirs(store_dir) == days[2:]
    assert reader.count(Query(MatchAll())) == 1000 - report.dropped_docs
    assert writer.apply_retention(now).dropped_partitions == ()  # nothing more to drop
    writer.close()


def test_size_drops_the_oldest_days_but_never_today(store_dir: Path) -> None:
    writer, per_day = _fill(store_dir, 3650 * DAY_S, 0)
    days = sorted(per_day)
    sizes = {day: dir_bytes(store_dir / day) for day in days}
    # room for about the two newest days
    writer.max_size = dir_bytes(store_dir) - sizes[days[0]] - sizes[days[1]] - sizes[days[2]] + 1
    today = SAMPLE_START_NS + 4 * DAY_NS
    report = writer.apply_retention(today)
    assert report.dropped_partitions == tuple(days[:3])
    assert dir_bytes(store_dir) <= writer.max_size
    writer.max_size = 1  # nothing fits: every day but today goes
    assert writer.apply_retention(today).dropped_partitions == (days[3],)
    assert day_dirs(store_dir) == [days[4]]
    # writing goes on into the day that is left
    writer.add(positions(sample_docs(10, seed=32, start_ns=today), first=50_000))
    writer.commit()
    assert EmbeddedReader(store_dir).count(Query(MatchAll())) == per_day[days[4]] + 10
    writer.close()


def test_a_reader_follows_a_day_dropped_and_made_again(store_dir: Path) -> None:
    docs = sample_docs(200, seed=33, days=1)
    writer = EmbeddedWriter(store_dir, max_age_s=DAY_S, max_size=0)
    writer.add(positions(docs))
    writer.commit()
    reader = EmbeddedReader(store_dir)
    assert reader.count(Query(MatchAll())) == 200  # the reader holds the day open
    writer.apply_retention(SAMPLE_START_NS + 3 * DAY_NS)
    assert day_dirs(store_dir) == []
    # a replay of the old records (new bus offsets) makes the day again before the reader
    # looks: it must open the new day, not read on in the one it had open
    writer.add(positions(docs[:50], first=1_000))
    writer.commit()
    want = expected_ids(Query(MatchAll()), docs[:50])
    assert [d.id for d in reader.scan(Query(MatchAll()), 1000, 60.0)] == want
    writer.close()
