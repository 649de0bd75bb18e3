"""Writes that share statements: what arrives while earlier writes are in flight goes into the next statement.

A worker's group commit gathers the steps of many instances into one transaction; a :class:`GatheredWriter` does
the same for writes that come one request at a time (starts, audit entries): an idle process writes a submission
at once, a busy one writes many per round trip, and each caller still waits until its own items are written.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import psycopg

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")

REFUSED_VALUES: tuple[type[BaseException], ...] = (psycopg.DataError, UnicodeEncodeError)
"""Errors that blame a value of the statement rather than the database: only the submission holding it fails."""


@dataclass
class _Submission(Generic[Item, Outcome]):
    items: Sequence[Item]
    future: asyncio.Future[list[Outcome]]


class GatheredWriter(Generic[Item, Outcome]):
    """Writes submissions of items with as few statements as the load allows.

    A submission is written at once while fewer than ``max_in_flight`` statements run; otherwise it waits, and the
    next statement writes it together with every submission that waited (up to ``max_items`` items; a submission is
    never split). ``write`` writes a list of items with one statement and returns one outcome per item, in order.
    A submission's outcome is all or nothing: a database error fails every submission of its statement, and a value
    the database refuses (:data:`REFUSED_VALUES`) fails only the submission that holds it.
    """

    def __init__(
        self, write: Callable[[list[Item]], Awaitable[Sequence[Outcome]]], *, max_items: int, max_in_flight: int
    ):
        self._write_items = write
        self.max_items = max_items
        self.max_in_flight = max_in_flight
        self._waiting: list[_Submission[Item, Outcome]] = []
        self._writers = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, items: Sequence[Item]) -> list[Outcome]:
        """Write ``items``; their outcomes, in order."""
        loop = asyncio.get_running_loop()
        submission: _Submission[Item, Outcome] = _Submission(items, loop.create_future())
        self._waiting.append(submission)
        if self._writers < self.max_in_flight:
            self._writers += 1
            task = loop.create_task(self._write_waiting())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await submission.future

    async def _write_waiting(self) -> None:
        try:
            while self._waiting:
                await self._write(self._take())
        finally:
            self._writers -= 1

    def _take(self) -> list[_Submission[Item, Outcome]]:
        """The waiting submissions the next statement writes, oldest first; those whose caller gave up are dropped."""
        taken: list[_Submission[Item, Outcome]] = []
        count = 0
        while self._waiting:
            submission = self._waiting[0]
            if submission.future.done():  # cancelled: the caller went away before its items were written
                self._waiting.pop(0)
                continue
            if taken and count + len(submission.items) > self.max_items:
                break
            taken.append(self._waiting.pop(0))
            count += len(submission.items)
        return taken

    async def _write(self, submissions: list[_Submission[Item, Outcome]]) -> None:
        if not submissions:
            return
        try:
            outcomes = await self._write_items([item for s in submissions for item in s.items])
        except REFUSED_VALUES as exc:
            if len(submissions) == 1:
                _fail(submissions, exc)
            else:  # one of them holds the value: write each alone, so that only its own caller is refused
                for submission in submissions:
                    await self._write([submission])
            return
        except BaseException as exc:
            _fail(submissions, exc)
            if not isinstance(exc, Exception):
                raise
            return
        start = 0
        for submission in submissions:
            end = start + len(submission.items)
            if not submission.future.done():
                submission.future.set_result(list(outcomes[start:end]))
            start = end


def _fail(submissions: Sequence[_Submission[Item, Outcome]], exc: BaseException) -> None:
    for submission in submissions:
        if submission.future.done():
            continue
        if isinstance(exc, asyncio.CancelledError):
            submission.future.cancel()
        else:
            submission.future.set_exception(exc)


class SharedDeadlines:
    """Waits for ``time.monotonic()`` times; every waiter of one time wakes in the same turn of the event loop.

    What they submit to a :class:`GatheredWriter` when they wake is then waiting together before its next
    statement begins, so it shares that statement (the starts of schedules due at one nominal time).
    """

    def __init__(self) -> None:
        self._timers: dict[float, asyncio.Future[None]] = {}

    async def until(self, deadline: float) -> None:
        """Return at ``deadline`` (at once when it has passed)."""
        delay = deadline - time.monotonic()
        if delay <= 0:
            return
        timer = self._timers.get(deadline)
        if timer is None:
            loop = asyncio.get_running_loop()
            timer = self._timers[deadline] = loop.create_future()
            loop.call_later(delay, self._ring, deadline)
        await asyncio.shield(timer)  # a waiter that is cancelled leaves the others their timer

    def _ring(self, deadline: float) -> None:
        early = deadline - time.monotonic()
        if early > 0:  # an event loop may round a delay to its clock's tick (uvloop: a millisecond)
            asyncio.get_running_loop().call_later(early, self._ring, deadline)
            return
        timer = self._timers.pop(deadline)
        if not timer.done():
            timer.set_result(None)
