"""The login lock-out on a fake clock: per user and per address, doubling, reset on success,
and a bounded table whose eviction does not unlock what is locked."""

from __future__ import annotations

import threading
import tracemalloc

import pytest

from logfactory.access.lockout import Kind, LoginThrottle, address_key, user_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def throttle(clock: Clock, **kwargs: int | float) -> LoginThrottle:
    args: dict[str, int | float] = {"max_failures": 3, "lockout_s": 60.0, "max_lockout_s": 600.0}
    args.update(kwargs)
    return LoginThrottle(clock=clock, **args)  # type: ignore[arg-type]


def fail(t: LoginThrottle, n: int, user: str = "alice", addr: str = "192.0.2.9") -> None:
    for _ in range(n):
        assert t.retry_after(user, addr) is None  # as the login route asks first
        t.failed(user, addr)


def test_a_user_is_locked_after_max_failures_in_a_row_from_any_addresses(clock: Clock) -> None:
    t = throttle(clock)
    t.failed("alice", "192.0.2.1")
    t.failed("Alice", "192.0.2.2")  # the same user, whatever the case, from elsewhere
    assert t.retry_after("alice", "192.0.2.3") is None
    assert t.failed(" ALICE ", "192.0.2.3") == 60.0  # the third: locked, and how long

    assert t.retry_after("alice", "198.51.100.7") == 60.0  # from any address
    assert t.retry_after("bob", "192.0.2.1") is None  # those addresses are not locked
    clock.now += 59.5
    assert t.retry_after("alice", "198.51.100.7") == pytest.approx(0.5)
    clock.now += 0.5
    assert t.retry_after("alice", "198.51.100.7") is None


def test_each_further_lock_out_doubles_up_to_the_maximum(clock: Clock) -> None:
    t = throttle(clock)
    lengths = []
    for _ in range(6):
        for i in range(3):
            t.failed("alice", f"192.0.2.{i}")  # three addresses: only the user locks
        wait = t.retry_after("alice", "192.0.2.99")
        assert wait is not None
        lengths.append(wait)
        clock.now += wait
    assert lengths == [60.0, 120.0, 240.0, 480.0, 600.0, 600.0]


def test_guessing_unknown_users_from_one_address_locks_that_address(clock: Clock) -> None:
    t = throttle(clock)
    for name in ("root", "admin", "oracle"):  # never the same user twice
        assert t.retry_after(name, "203.0.113.5") is None
        t.failed(name, "203.0.113.5")
    assert t.retry_after("postgres", "203.0.113.5") == 60.0  # any user, from there
    assert t.retry_after("root", "192.0.2.9") is None  # the users are not locked
    assert t.retry_after("postgres", "192.0.2.9") is None


def test_an_ipv6_host_cannot_escape_by_changing_address_within_its_64(clock: Clock) -> None:
    t = throttle(clock)
    for i in range(3):
        t.failed(f"user{i}", f"2001:db8:1:2::{i + 1:x}")
    assert t.retry_after("other", "2001:db8:1:2:ffff::9") == 60.0
    assert t.retry_after("other", "2001:db8:1:3::1") is None  # the next /64 is someone else
    assert address_key("::ffff:192.0.2.9") == address_key("192.0.2.9")
    assert address_key("testclient") != address_key("192.0.2.9")  # not an address: as given


def test_a_success_clears_the_users_streak_and_the_owners_mistakes(clock: Clock) -> None:
    t = throttle(clock)
    fail(t, 2)
    t.succeeded("alice", "192.0.2.9")
    fail(t, 2)  # two more: would be the fourth and fifth without the success
    assert t.retry_after("alice", "192.0.2.9") is None
    assert len(t) == 2  # the user's and the address's streak
    t.succeeded("alice", "192.0.2.9")
    assert len(t) == 0  # nothing left to remember


def test_a_success_clears_the_doubling_history_of_the_user(clock: Clock) -> None:
    t = throttle(clock)
    for i in range(3):
        t.failed("alice", f"192.0.2.{i}")
    clock.now += 60
    t.succeeded("alice", "192.0.2.50")
    for i in range(3):
        t.failed("alice", f"192.0.2.{i + 10}")
    assert t.retry_after("alice", "192.0.2.99") == 60.0  # not 120: the history went too


def test_a_valid_login_does_not_wash_an_address_guessing_at_other_users(clock: Clock) -> None:
    t = throttle(clock)
    t.failed("root", "203.0.113.5")
    t.failed("admin", "203.0.113.5")
    t.succeeded("mallory", "203.0.113.5")  # the guesser's own account
    t.failed("oracle", "203.0.113.5")
    assert t.retry_after("postgres", "203.0.113.5") == 60.0


def test_a_streak_is_forgotten_after_the_longest_lock_out_of_quiet(clock: Clock) -> None:
    t = throttle(clock)
    fail(t, 2)
    clock.now += 600  # max_lockout_s without a failure
    fail(t, 2)
    assert t.retry_after("alice", "192.0.2.9") is None
    fail(t, 1)
    assert t.retry_after("alice", "192.0.2.9") == 60.0


def test_lock_outs_are_reported_by_kind(clock: Clock) -> None:
    heard: list[Kind] = []
    t = LoginThrottle(2, 60.0, clock=clock, on_lock=heard.append)
    t.failed("alice", "192.0.2.9")
    t.failed("alice", "192.0.2.9")
    assert sorted(heard) == ["address", "user"]
    assert t.lockouts == 2


def test_a_flood_of_new_names_evicts_streaks_but_never_a_running_lock(clock: Clock) -> None:
    t = throttle(clock, max_tracked=100)
    for i in range(3):
        t.failed("alice", f"192.0.2.{i}")  # alice is locked
    t.failed("bob", "192.0.2.50")  # bob has a streak of one
    for i in range(10_000):  # from 10,000 addresses, each failing once
        t.failed(f"guess-{i}", f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}")
        assert len(t) <= 100
    assert t.retry_after("alice", "192.0.2.99") == 60.0  # still locked
    t.failed("bob", "192.0.2.51")
    t.failed("bob", "192.0.2.52")
    assert t.retry_after("bob", "192.0.2.99") is None  # bob's first failure was pushed out


def test_a_table_full_of_locks_drops_the_one_ending_soonest(clock: Clock) -> None:
    t = throttle(clock, max_failures=1, max_tracked=4)
    t.failed("a", "192.0.2.1")  # two locks, ending at +60
    clock.now += 10
    t.failed("b", "192.0.2.2")  # two more, ending at +70: the table is full of locks
    t.failed("c", "192.0.2.3")  # room for two: a's and 192.0.2.1's lock go
    assert len(t) == 4
    assert t.retry_after("a", "192.0.2.99") is None
    assert t.retry_after("b", "192.0.2.99") == 60.0
    assert t.retry_after("c", "192.0.2.99") == 60.0


def _guess(t: LoginThrottle, i: int) -> None:
    """Failed login ``i`` of a flood: a fresh name as long as an attacker likes, from a fresh
    address every second name (below the lock-out)."""
    t.failed(f"{i:07d}" * 20, f"10.{i >> 17}.{(i >> 9) & 255}.{(i >> 1) & 255}")


@pytest.mark.timeout(120)
def test_a_million_distinct_names_stay_within_the_bound(clock: Clock) -> None:
    t = throttle(clock, max_tracked=10_000)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(10_000):
            _guess(t, i)
        full = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()  # the next 970,000 untraced: tracing is slow
        for i in range(10_000, 980_000):
            _guess(t, i)
            if i % 100_000 == 0:
                assert len(t) == 10_000
        # the last 20,000 names traced: they replace the table (untraced) twice over, so all
        # it holds is then traced, and anything it kept beyond its keys would show
        tracemalloc.start()
        for i in range(980_000, 1_000_000):
            _guess(t, i)
        now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(t) == 10_000
    assert full < 10_000 * 400  # bytes per key held, everything included (measured: 241)
    assert now < full * 1.1  # a million names later, one table's worth and no more
    assert peak < full * 1.5  # while its hash table is resized, the old one is alive too
    assert len(user_key("x" * 1_000_000)) == len(user_key("x"))  # a name's length costs nothing


def test_threads_failing_at_once_lock_exactly_once(clock: Clock) -> None:
    heard: list[Kind] = []
    t = LoginThrottle(100, 60.0, clock=clock, on_lock=heard.append)
    start = threading.Barrier(4)

    def guess(n: int) -> None:
        start.wait()
        for i in range(50):
            t.failed("alice", f"192.0.2.{n * 50 + i}")  # 200 addresses: only alice locks

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert heard == ["user"]  # 200 failures: locked at the 100th, later ones not counted
    assert t.retry_after("alice", "192.0.2.250") == 60.0


def test_nonsense_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_failures"):
        LoginThrottle(0, 60.0)
