"""Step timeouts for many short steps: one periodic check instead of a timer per step.

``asyncio.timeout`` arms a timer for every step and disarms it when the step ends; at thousands of steps a second
that is a tenth of a worker's time. :class:`StepDeadlines` notes each running step's deadline in a dict and checks
them all every :data:`RESOLUTION` seconds, cancelling a step that has overrun, which then ends with
``TimeoutError`` exactly as under ``asyncio.timeout``: a step is stopped within ``RESOLUTION`` of its timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")

RESOLUTION = 0.1
"""Seconds between checks: how late past its timeout a step may be stopped."""


class _Deadline:
    __slots__ = ("at", "expired")

    def __init__(self, at: float):
        self.at = at
        self.expired = False


class StepDeadlines:
    """The deadlines of a worker's running steps; :meth:`watch_forever` enforces them."""

    def __init__(self) -> None:
        self._running: dict[asyncio.Task[Any], _Deadline] = {}

    async def run(self, awaitable: Awaitable[T], seconds: float, task: asyncio.Task[Any] | None = None) -> T:
        """Await ``awaitable`` in the current task; TimeoutError if it takes longer than ``seconds``.

        ``task`` is the current task, when the caller has it at hand.
        """
        task = task or asyncio.current_task()
        assert task is not None, "a step runs in a task"
        deadline = self._running[task] = _Deadline(time.monotonic() + seconds)
        try:
            result = await awaitable
        except asyncio.CancelledError:
            if deadline.expired and task.uncancel() == 0:
                raise TimeoutError from None
            raise
        finally:
            del self._running[task]
        if deadline.expired:
            task.uncancel()  # the step swallowed the cancellation and returned: take the request back
        return result

    async def watch_forever(self) -> None:
        """Cancel the steps past their deadline, every :data:`RESOLUTION` seconds."""
        while True:
            await asyncio.sleep(RESOLUTION)
            now = time.monotonic()
            for task, deadline in list(self._running.items()):
                if deadline.at <= now and not deadline.expired:
                    deadline.expired = True
                    task.cancel()
