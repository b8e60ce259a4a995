"""Waiting for a condition with a deadline: how tests synchronise, never with a bare sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


def wait_for(
    predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` until it is truthy; fail the test with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def wait_for_async(
    predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition"
) -> None:
    """:func:`wait_for` inside an event loop: polls between the loop's other work."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
