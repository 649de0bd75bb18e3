"""The gathered writer: what arrives while statements are in flight shares the next one; outcomes reach their caller."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from postgit.gathering import GatheredWriter, SharedDeadlines


class Recorder:
    """A write function that records each statement's items and holds it until released."""

    def __init__(self, refuse: object = None, fail: bool = False):
        self.statements: list[list[object]] = []
        self.release = asyncio.Event()
        self.refuse = refuse
        self.fail = fail

    async def write(self, items: list[object]) -> list[str]:
        self.statements.append(list(items))
        await self.release.wait()
        if self.fail:
            raise psycopg.OperationalError("the connection was lost")
        if self.refuse in items:
            raise psycopg.DataError(f"cannot store {self.refuse!r}")
        return [f"wrote {item}" for item in items]


async def until(condition, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0)


async def test_an_idle_writer_writes_at_once_and_a_busy_one_gathers_what_waits():
    recorder = Recorder()
    writer = GatheredWriter(recorder.write, max_items=100, max_in_flight=1)
    first = asyncio.create_task(writer.submit(["a"]))
    await until(lambda: len(recorder.statements) == 1)
    waiting = [asyncio.create_task(writer.submit([name])) for name in ("b", "c")]
    waiting.append(asyncio.create_task(writer.submit(["d", "e"])))
    await asyncio.sleep(0)
    recorder.release.set()
    assert await first == ["wrote a"]
    assert [await task for task in waiting] == [["wrote b"], ["wrote c"], ["wrote d", "wrote e"]]
    assert recorder.statements == [["a"], ["b", "c", "d", "e"]]


async def test_a_statement_holds_at_most_max_items_and_never_splits_a_submission():
    recorder = Recorder()
    writer = GatheredWriter(recorder.write, max_items=3, max_in_flight=1)
    first = asyncio.create_task(writer.submit(["a"]))
    await until(lambda: len(recorder.statements) == 1)
    rest = [asyncio.create_task(writer.submit(items)) for items in (["b", "c"], ["d", "e"], ["f"])]
    await asyncio.sleep(0)
    recorder.release.set()
    await asyncio.gather(first, *rest)
    assert recorder.statements == [["a"], ["b", "c"], ["d", "e", "f"]]


async def test_a_refused_value_fails_only_the_submission_that_holds_it():
    recorder = Recorder(refuse="bad")
    writer = GatheredWriter(recorder.write, max_items=100, max_in_flight=1)
    first = asyncio.create_task(writer.submit(["a"]))
    await until(lambda: len(recorder.statements) == 1)
    good = asyncio.create_task(writer.submit(["b"]))
    bad = asyncio.create_task(writer.submit(["bad", "c"]))
    await asyncio.sleep(0)
    recorder.release.set()
    assert await first == ["wrote a"]
    assert await good == ["wrote b"]
    with pytest.raises(psycopg.DataError, match="bad"):
        await bad
    assert recorder.statements == [["a"], ["b", "bad", "c"], ["b"], ["bad", "c"]]


async def test_a_database_error_fails_every_submission_of_its_statement_and_the_writer_goes_on():
    recorder = Recorder(fail=True)
    writer = GatheredWriter(recorder.write, max_items=100, max_in_flight=1)
    tasks = [asyncio.create_task(writer.submit([name])) for name in ("a", "b")]
    recorder.release.set()
    for task in tasks:
        with pytest.raises(psycopg.OperationalError):
            await task
    recorder.fail = False
    assert await writer.submit(["c"]) == ["wrote c"]


async def test_a_caller_that_gave_up_before_its_turn_is_not_written():
    recorder = Recorder()
    writer = GatheredWriter(recorder.write, max_items=100, max_in_flight=1)
    first = asyncio.create_task(writer.submit(["a"]))
    await until(lambda: len(recorder.statements) == 1)
    gave_up = asyncio.create_task(writer.submit(["b"]))
    kept = asyncio.create_task(writer.submit(["c"]))
    await asyncio.sleep(0)
    gave_up.cancel()
    recorder.release.set()
    await asyncio.gather(first, kept)
    assert recorder.statements == [["a"], ["c"]]


async def test_starts_waiting_for_one_time_share_a_statement():
    recorder = Recorder()
    recorder.release.set()
    writer = GatheredWriter(recorder.write, max_items=100, max_in_flight=2)
    deadlines = SharedDeadlines()
    deadline = time.monotonic() + 0.05

    async def start_at(name: str) -> list[str]:
        await deadlines.until(deadline)
        assert time.monotonic() >= deadline
        return await writer.submit([name])

    names = [f"s{number}" for number in range(20)]
    assert await asyncio.gather(*(start_at(name) for name in names)) == [[f"wrote {name}"] for name in names]
    assert recorder.statements == [names]


async def test_a_cancelled_waiter_leaves_the_others_their_deadline():
    deadlines = SharedDeadlines()
    deadline = time.monotonic() + 0.05
    cancelled = asyncio.create_task(deadlines.until(deadline))
    kept = asyncio.create_task(deadlines.until(deadline))
    await asyncio.sleep(0)
    cancelled.cancel()
    await kept
    assert time.monotonic() >= deadline
    await deadlines.until(time.monotonic() - 1)  # a time that has passed returns at once
