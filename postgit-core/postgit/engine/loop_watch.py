"""A watchdog that finds the handler which blocks the worker's event loop.

An ``async def`` handler that calls a blocking function (``time.sleep``, a synchronous HTTP client, heavy CPU work)
stops every instance the worker runs, its lease renewals included: without a watchdog its lease expires, another
worker takes the instance, blocks the same way, and the step never ends. :class:`LoopWatchdog` runs a thread that
sees the loop stop ticking. It looks up which step's task is running at that moment and logs its node type and
node; once the loop has been blocked for :attr:`LoopWatchdog.block_seconds` (a third of the lease: one missed
renewal), it keeps that instance's lease alive from the thread, so that when the handler returns the engine can
still record the attempt as failed (``LoopBlocked``), and the retry policy ends the instance instead of workers
taking it from each other forever. The instances of a blocked worker that did not cause it are not renewed: their
leases run out as usual and other workers take them.

A block is what the loop's thread spent running or sleeping: on Linux, the time it waited for a CPU (its run-queue
wait, from ``/proc``) is left out, so that an overloaded machine, which slows every thread, does not count against
the handler that happened to be running.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from postgit.nodes import StepContext
from postgit.outcomes import RetryableError

log = logging.getLogger("postgit.worker")

REPORT_SECONDS = 1.0
"""A block at least this long is logged (or :attr:`LoopWatchdog.block_seconds`, when that is shorter)."""


class LoopBlocked(RetryableError):
    """A handler blocked the worker's event loop for too long; the attempt fails and may be retried."""


@dataclass(slots=True)
class _Step:
    ctx: StepContext
    node_type: str

    def describe(self) -> str:
        ctx = self.ctx
        run = f", run '{ctx.run_key}'" if ctx.run_key and ctx.run_key != ctx.node_id else ""
        return (
            f"node type {self.node_type}, node '{ctx.node_id}' (instance {ctx.instance_id}{run}, attempt {ctx.attempt})"
        )


@dataclass(slots=True)
class _Block:
    """A block as the watchdog thread sees it: since the tick at ``since``, in the task ``task``."""

    since: float
    task: asyncio.Task[object] | None
    step: _Step | None
    renewed_at: float | None = None


class LoopWatchdog:
    """Finds blocks of an event loop and the step that caused them; see the module docstring."""

    def __init__(self, *, block_seconds: float, renew: Callable[[str], None] | None = None):
        """Watch for blocks; ``renew(instance_id)`` is called from the thread to keep a blocking step's lease."""
        self.block_seconds = block_seconds
        self.report_seconds = min(REPORT_SECONDS, block_seconds)
        self.interval = min(0.1, self.report_seconds / 4)
        self._renew = renew
        self._steps: dict[asyncio.Task[object], _Step] = {}
        self._blocked: dict[asyncio.Task[object], float] = {}
        self._block: _Block | None = None
        self._last_tick = time.monotonic()
        self._last_wait = 0.0
        self._schedstat: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start watching the running loop."""
        self._loop = asyncio.get_running_loop()
        self._schedstat = f"/proc/self/task/{threading.get_native_id()}/schedstat"
        self._stop.clear()
        self._tick()
        self._thread = threading.Thread(target=self._watch, name="postgit-loop-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.cancel()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- the loop's side ---------------------------------------------------------------------------------------

    def track(
        self, ctx: StepContext, node_type: str, task: asyncio.Task[object] | None = None
    ) -> asyncio.Task[object] | None:
        """Note that the current task (``task``, when the caller has it at hand) now runs a handler of ``node_type``."""
        task = task or asyncio.current_task()
        if task is not None:
            self._steps[task] = _Step(ctx, node_type)
        return task

    def forget(self, task: asyncio.Task[object] | None) -> None:
        """The handler of ``task`` was cancelled: stop tracking it."""
        self._steps.pop(task, None)  # type: ignore[arg-type]
        self._blocked.pop(task, None)  # type: ignore[arg-type]

    def untrack(self, task: asyncio.Task[object] | None) -> None:
        """The handler of ``task`` returned; raises LoopBlocked if it blocked the loop too long."""
        if task is None:
            return
        self._steps.pop(task, None)
        seconds = self._blocked.pop(task, 0.0)
        block = self._block
        if block is not None and block.task is task and block.since == self._last_tick:
            seconds = max(seconds, self._blocked_since_tick(time.monotonic()))  # it returned from the block just now
        if seconds >= self.block_seconds:
            raise LoopBlocked(
                f"the handler blocked the worker's event loop for {seconds:.1f}s (the limit is "
                f"{self.block_seconds:g}s); an async handler must not call blocking code: make it a plain def "
                f"handler, which runs in a thread, or wrap the blocking call in asyncio.to_thread"
            )

    def _blocked_since_tick(self, now: float) -> float:
        """Seconds the loop's thread has spent since the last tick, less its waits for a CPU."""
        return now - self._last_tick - (self._run_queue_wait() - self._last_wait)

    def _run_queue_wait(self) -> float:
        """Seconds the loop's thread has waited for a CPU since it started (0 where the system does not say)."""
        if self._schedstat is None:
            return 0.0
        try:
            with open(self._schedstat) as stat:
                return int(stat.read().split()[1]) / 1e9
        except (OSError, ValueError, IndexError):
            self._schedstat = None
            return 0.0

    def _tick(self) -> None:
        now = time.monotonic()
        block = self._block
        ended = block is not None and block.since == self._last_tick
        seconds = self._blocked_since_tick(now) - self.interval if ended else 0.0
        self._last_wait = self._run_queue_wait()
        self._last_tick = now  # before the block is cleared: the thread must not take the end for a new block
        if block is not None and ended:
            self._block = None
            if block.task is not None and block.task in self._steps:
                self._blocked[block.task] = max(self._blocked.get(block.task, 0.0), seconds)
            where = f"by {block.step.describe()}" if block.step else "outside any step's handler"
            log.warning("the event loop was blocked for %.1fs %s", seconds, where)
        assert self._loop is not None
        self._timer = self._loop.call_later(self.interval, self._tick)

    # -- the thread's side -------------------------------------------------------------------------------------

    def _watch(self) -> None:
        due = time.monotonic() + self.interval
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            now = time.monotonic()
            late, due = now - due, now + self.interval
            if late > self.interval:
                continue  # the whole process was stopped or starved (SIGSTOP, an overloaded machine), not the loop
            since = self._last_tick
            blocked = self._blocked_since_tick(now) - self.interval
            if blocked < self.report_seconds:
                continue
            block = self._block
            if block is None or block.since != since:
                task = asyncio.current_task(self._loop)
                if self._last_tick != since:
                    continue  # the loop ticked meanwhile: the block is over
                block = self._block = _Block(since, task, self._steps.get(task) if task else None)
                where = f"by {block.step.describe()}" if block.step else "outside any step's handler"
                log.warning("the event loop has been blocked for %.1fs %s", blocked, where)
            if block.step is not None and blocked >= self.block_seconds:
                self._keep_lease(block)

    def _keep_lease(self, block: _Block) -> None:
        now = time.monotonic()
        if self._renew is None or (block.renewed_at is not None and now - block.renewed_at < self.block_seconds):
            return
        block.renewed_at = now
        assert block.step is not None
        try:
            self._renew(block.step.ctx.instance_id)
        except Exception as exc:
            log.warning("renewing the lease of blocked instance %s failed (%s)", block.step.ctx.instance_id, exc)
