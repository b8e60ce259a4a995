"""A blocking library call with a deadline of our own.

Why: some librdkafka calls can wait for ever, past the timeout they are given, when a broker
stops answering (confluentinc/librdkafka#3740, #5456, #5511). Python cannot interrupt a thread
inside C, so the call runs on a daemon helper thread and the caller stops waiting at the
deadline; the caller then decides what to abandon. A call still running is left to finish alone
(its thread never keeps the process from exiting).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["bounded_call"]


def bounded_call(name: str, timeout: float, call: Callable[..., object], *args: object) -> bool:
    """Run ``call(*args)``; True once it returned, False if still running after ``timeout``.
    An exception it raised is raised here, in the caller's thread."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            call(*args)
        except BaseException as exc:  # handed to the caller's thread below
            failure.append(exc)

    helper = threading.Thread(target=target, name=name, daemon=True)
    helper.start()
    helper.join(timeout)
    if helper.is_alive():
        return False
    if failure:
        raise failure[0]
    return True
