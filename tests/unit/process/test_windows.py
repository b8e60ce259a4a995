"""Sliding windows per key: ordering, pruning, firing, LRU bounds."""

from __future__ import annotations

from logfactory.factory.process.windows import Hit, KeyedWindows, Window


def hit(t: int) -> Hit:
    return Hit(t, "h", f"m{t}", ())


def test_hits_stay_sorted_and_old_ones_are_pruned() -> None:
    w = Window()
    for t in (10, 30, 20, 25):
        assert w.add(hit(t), window_ns=100)
    assert [h.time_ns for h in w.hits] == [10, 20, 25, 30]
    assert w.add(hit(125), window_ns=100)  # 10 and 20 fall out (older than 125 - 100)
    assert [h.time_ns for h in w.hits] == [25, 30, 125]
    assert not w.add(hit(5), window_ns=100)  # too old to count at all
    assert len(w.hits) == 3


def test_fire_empties_and_suppresses() -> None:
    w = Window()
    w.add(hit(1), 100)
    w.add(hit(2), 100)
    taken = w.fire(until_ns=500)
    assert [h.time_ns for h in taken] == [1, 2]
    assert w.hits == []
    assert w.suppressed_until == 500


def test_prune_returns_how_many() -> None:
    w = Window([hit(1), hit(2), hit(3)])
    assert w.prune(3) == 2
    assert w.prune(3) == 0


def test_keyed_windows_evict_least_recently_touched() -> None:
    keys = KeyedWindows(max_keys=2)
    keys.touch("a").add(hit(1), 10)
    keys.touch("b").add(hit(1), 10)
    keys.touch("a")  # a is now more recent than b
    keys.touch("c")
    assert [k for k, _ in keys.items()] == ["a", "c"]
    assert len(keys) == 2
    assert keys.partial() == 1  # only a has hits


def test_keyed_expire_keeps_running_suppressions() -> None:
    keys = KeyedWindows(max_keys=10)
    keys.touch("stale").add(hit(1), 10)
    keys.touch("fresh").add(hit(95), 10)
    keys.touch("suppressed").fire(until_ns=200)
    assert keys.expire(reference_ns=100, window_ns=10) == 1
    assert sorted(k for k, _ in keys.items()) == ["fresh", "suppressed"]
    assert keys.expire(reference_ns=300, window_ns=10) == 2
    assert len(keys) == 0
