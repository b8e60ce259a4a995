"""The pause before a role is rebuilt: doubling to a cap, fresh after a commit."""

from __future__ import annotations

from logfactory.lifeline import RestartBackoff


def test_delays_double_to_the_cap_and_start_again_after_a_commit() -> None:
    cleared: list[int] = []
    backoff = RestartBackoff(lambda: cleared.append(1), first=0.5, cap=2.0)
    delays = [backoff.failed()[0] for _ in range(4)]
    assert delays == [0.5, 1.0, 2.0, 2.0]
    first_since = backoff.failed()[1]
    backoff.on_commit()
    backoff.on_commit()  # only the first commit after a failure clears the problem
    assert cleared == [1]
    delay, since = backoff.failed()
    assert delay == 0.5  # it worked for a while: a new failure, a fresh backoff
    assert since >= first_since
