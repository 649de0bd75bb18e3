"""Wait on conditions with a bounded timeout instead of sleeping a fixed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def wait_for(
    predicate: Callable[[], Awaitable[T]], *, timeout: float = 20.0, interval: float = 0.02, what: str = "condition"
) -> T:
    """Await ``predicate()`` until it returns something truthy, and return that; AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await predicate()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")


def wait_for_sync(
    predicate: Callable[[], T], *, timeout: float = 20.0, interval: float = 0.02, what: str = "condition"
) -> T:
    """The blocking twin of :func:`wait_for`."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")
