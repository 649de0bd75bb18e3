"""Worker: claims runnable instances and executes them, many at a time, until asked to stop.

Structure (procrastinate's and River's): supervised side tasks (group committer, lease and heartbeat renewal,
LISTEN, retention, the scheduler that fires schedules) around a claim loop bounded by ``concurrency``. The claim
loop wakes on NOTIFY, on a freed slot, at the earliest due time it knows of, and otherwise polls on a jittered
interval as a fallback only.

A worker never runs a step it may no longer hold: every lease's end is kept by the worker's own clock (from the
moment it sent the claim or the renewal that set it), and a step whose lease runs out before a renewal answers is
cancelled, whatever the database is doing (stopped answering, cut off by the network); it serves again once the
database answers.

Stopping (SIGTERM): claim nothing more, let running steps finish within the grace period, cancel the rest, hand
their leases back so other workers take them at once, and deregister.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from postgit.clock import SYSTEM_CLOCK, Clock
from postgit.db.store import Store, renew_leases_blocking
from postgit.definition import ANY_WORKER
from postgit.engine.committer import CommitUnknown, GroupCommitter
from postgit.engine.driver import HeldInstance
from postgit.engine.executor import Executor
from postgit.engine.listener import listen_for_work
from postgit.engine.loop_watch import LoopWatchdog
from postgit.engine.retention import Retention
from postgit.engine.scheduler import Scheduler
from postgit.metrics import CLAIM_LAG
from postgit.plugin_versions import registry_versions
from postgit.registry import NodeRegistry
from postgit.service import WorkflowService
from postgit.settings import WorkerSettings

log = logging.getLogger("postgit.worker")

MAX_CLAIM_BATCH = 200
MIN_IDLE_WAIT = 0.005


class Worker:
    """One worker process's engine; ``await worker.run()`` until :meth:`stop`."""

    def __init__(
        self,
        *,
        store: Store,
        registry: NodeRegistry,
        settings: WorkerSettings,
        clock: Clock = SYSTEM_CLOCK,
        tracer_provider: Any = None,
    ):
        self.store = store
        self.clock = clock
        self.registry = registry
        self.settings = settings
        self.id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.committer = GroupCommitter(store)
        self.threads = ThreadPoolExecutor(max_workers=min(32, settings.concurrency), thread_name_prefix="postgit-step")
        self.watchdog = LoopWatchdog(block_seconds=settings.lease_seconds / 3, renew=self._keep_blocked_lease)
        self.executor = Executor(
            store=store,
            registry=registry,
            committer=self.committer,
            worker_id=self.id,
            lease_seconds=settings.lease_seconds,
            threads=self.threads,
            on_timer=self._note_timer,
            on_letting_go=self._letting_go,
            watchdog=self.watchdog,
            clock=clock,
            tracer_provider=tracer_provider,
            queues=settings.queues,
        )
        self.queues = settings.queues
        """The queues this worker serves (None: every queue)."""
        self.retention = Retention(
            store, settings.retention_seconds, settings.retention_interval_seconds, events_keep=settings.events_keep
        )
        self.scheduler = Scheduler(WorkflowService(store, registry))
        self.node_types = self.executor.node_types
        self.registered_types = self.node_types - {ANY_WORKER}
        self.plugins = registry_versions(registry)
        """The package and version of each node type, recorded with the worker's row."""
        self._held: dict[uuid.UUID, int] = {}
        self._lease_ends: dict[uuid.UUID, float] = {}
        """When each held lease runs out by this worker's clock (``time.monotonic()``), at the latest."""
        self._suspects: set[tuple[uuid.UUID, int]] = set()
        self._tasks: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._leaving: set[tuple[uuid.UUID, int]] = set()
        """Held instances (id, lease token) whose last write is submitted: their slots count as free."""
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._next_timer: float | None = None
        self.started = asyncio.Event()
        """Set once the worker is registered and claiming (tests wait on it)."""

    @property
    def in_flight(self) -> int:
        """How many instances this worker is executing right now."""
        return len(self._tasks)

    def stop(self) -> None:
        """Ask the worker to stop gracefully (safe to call from a signal handler)."""
        self._stopping.set()
        self._wakeup.set()

    async def run(self) -> None:
        """Register, run until stopped, hand back leases, deregister."""
        await self.store.register_worker(self.id, self.registered_types, self.plugins, self.queues)
        log.info(
            "worker %s started with node types %s, serving %s",
            self.id,
            ", ".join(sorted(self.registry)),
            "every queue" if self.queues is None else "queues " + ", ".join(sorted(self.queues)),
        )
        try:
            await self.executor.plugin_check.check_deployed(self.store)
        except Exception as exc:  # a warning only: never a reason not to start
            log.warning("could not compare plugin versions with the deployed workflows: %s", exc)
        side_tasks = [
            asyncio.create_task(self.committer.run(), name="committer"),
            asyncio.create_task(self._renew_loop(), name="renew"),
            asyncio.create_task(self._lease_guard(), name="lease-guard"),
            asyncio.create_task(self.executor.run_background(), name="executor-background"),
            asyncio.create_task(self.retention.run(), name="retention"),
            asyncio.create_task(self.scheduler.run(), name="scheduler"),
            asyncio.create_task(
                listen_for_work(self.settings.listen_url, self.node_types, self._wakeup, self.executor.poke),
                name="listener",
            ),
        ]
        claim_loop = asyncio.create_task(self._claim_loop(), name="claim-loop")
        self.watchdog.start()
        try:
            done, _ = await asyncio.wait([claim_loop, *side_tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not claim_loop and task.exception() is not None:
                    raise RuntimeError(f"worker side task {task.get_name()} failed") from task.exception()
            await claim_loop
            await self._drain()
        finally:
            claim_loop.cancel()
            for task in side_tasks[1:]:
                task.cancel()
            self.committer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(side_tasks[0], 10)
            for task in side_tasks:
                task.cancel()
            await asyncio.gather(*side_tasks, return_exceptions=True)
            await self._cancel_running()
            await self._release_held()
            with contextlib.suppress(Exception):
                await self.store.deregister_worker(self.id)
            with contextlib.suppress(Exception):
                await self.store.changes.aclose()
            self.threads.shutdown(wait=False, cancel_futures=True)
            self.watchdog.stop()
            log.info("worker %s stopped", self.id)

    # -- claiming ----------------------------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        self.started.set()
        while not self._stopping.is_set():
            # Clear before looking: a wake-up that arrives from here on is kept for the wait below.
            self._wakeup.clear()
            free = self.settings.concurrency - len(self._tasks) + len(self._leaving)
            if free <= 0:
                await self._wait(None)
                continue
            sent = time.monotonic()
            try:
                claims = await self.store.claim_instances(
                    worker_id=self.id,
                    node_types=self.node_types,
                    limit=min(free, MAX_CLAIM_BATCH),
                    lease_seconds=self.settings.lease_seconds,
                    queues=self.queues,
                )
            except Exception as exc:
                log.warning("claiming failed (%s); retrying", exc)
                await self._wait(1.0)
                continue
            for row in claims:
                if (lag := row.get("claim_lag")) is not None:
                    CLAIM_LAG.observe(max(0.0, lag))
            claimed = [HeldInstance.from_claim(row) for row in claims]
            if claimed and time.monotonic() - sent > self.settings.lease_seconds / 3:
                sent, claimed = await self._confirm_late_claims(claimed)
            for held in claimed:
                self._lease_ends[held.id] = sent + self.settings.lease_seconds
                self._start(held)
            if len(claims) == min(free, MAX_CLAIM_BATCH):
                continue  # there may be more due right now
            await self._wait(await self._idle_delay())

    async def _confirm_late_claims(self, claimed: list[HeldInstance]) -> tuple[float, list[HeldInstance]]:
        """Renew claims whose answer came late, before any of their steps starts.

        A claim answered after a third of its lease leaves the step it starts little time before the lease guard
        stops it, possibly after its side effect went out, and another worker repeats it. Returns when the renewal
        was sent and the claims it confirmed; the others are handed back unstarted (fenced by their lease tokens),
        so that the next claim does not charge them an attempt that never ran.
        """
        sent = time.monotonic()
        leases = {held.id: held.lease_token for held in claimed}
        try:
            renewed = await self.store.renew_leases(leases, self.settings.lease_seconds)
        except Exception as exc:
            log.warning("confirming %d claims that were answered late failed (%s)", len(claimed), exc)
            renewed = set()
        await self._release({key: token for key, token in leases.items() if key not in renewed})
        return sent, [held for held in claimed if held.id in renewed]

    def _start(self, held: HeldInstance) -> None:
        self._held[held.id] = held.lease_token
        task = asyncio.create_task(self._drive(held), name=f"instance-{held.id}")
        self._tasks[held.id] = task

    async def _drive(self, held: HeldInstance) -> None:
        try:
            await self.executor.run(held)
        except asyncio.CancelledError:
            raise
        except CommitUnknown:
            await self._release({held.id: held.lease_token})
        except Exception:
            log.exception("instance %s: unexpected error; handing it back", held.id)
            await self._release({held.id: held.lease_token})
        finally:
            # the instance may be held again already, under a new claim, once its last write committed
            if self._held.get(held.id) == held.lease_token:
                del self._held[held.id]
                self._lease_ends.pop(held.id, None)
            if self._tasks.get(held.id) is asyncio.current_task():
                del self._tasks[held.id]
            self._leaving.discard((held.id, held.lease_token))
            self._wakeup.set()

    def _letting_go(self, held: HeldInstance) -> None:
        """``held``'s last write under its lease is submitted: claim another instance while it is written."""
        self._leaving.add((held.id, held.lease_token))
        self._wakeup.set()

    async def _idle_delay(self) -> float:
        """Seconds until the earliest known due time, capped by the jittered fallback poll."""
        poll = self.settings.poll_seconds * random.uniform(0.8, 1.0)
        candidates = [poll]
        try:
            next_run_at = await self.store.next_run_at(self.node_types, self.queues)
        except Exception:
            next_run_at = None
        now = self.clock.now().timestamp()
        if next_run_at is not None:
            candidates.append(next_run_at.timestamp() - now)
        if self._next_timer is not None:
            candidates.append(self._next_timer - now)
            if self._next_timer <= now:
                self._next_timer = None
        return max(MIN_IDLE_WAIT, min(candidates))

    def _note_timer(self, at: float) -> None:
        if self._next_timer is None or at < self._next_timer:
            self._next_timer = at
            self._wakeup.set()

    async def _wait(self, seconds: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), seconds)

    # -- leases ------------------------------------------------------------------------------------------------

    async def _renew_loop(self) -> None:
        """Renew held leases and the worker's heartbeat every third of a lease; abandon leases that were lost.

        A renewal that failed is tried again sooner, so that one slow answer does not cost a lease.
        """
        interval = self.settings.lease_seconds / 3
        delay = interval
        while True:
            await asyncio.sleep(delay)
            delay = interval
            held = dict(self._held)
            sent = time.monotonic()
            try:
                renewed = await self.store.renew_leases(held, self.settings.lease_seconds) if held else set()
            except Exception as exc:
                log.warning("renewing leases failed (%s)", exc)
                delay = interval / 4
                continue
            for instance_id in renewed:
                if self._held.get(instance_id) == held[instance_id]:
                    self._lease_ends[instance_id] = sent + self.settings.lease_seconds
            try:
                await self.store.heartbeat_worker(self.id, self.registered_types, self.plugins, self.queues)
            except Exception as exc:
                log.warning("renewing the worker's heartbeat failed (%s)", exc)
            # A renewal that races with the commit finishing an instance fails harmlessly; only a lease that
            # fails to renew twice in a row, still held under the same token, was really lost.
            suspects, self._suspects = self._suspects, set()
            for instance_id, token in held.items():
                if instance_id in renewed or self._held.get(instance_id) != token:
                    continue
                if (instance_id, token) not in suspects:
                    self._suspects.add((instance_id, token))
                elif (task := self._tasks.get(instance_id)) is not None:
                    log.warning("instance %s: lease lost; abandoning its running step", instance_id)
                    task.cancel()

    async def _lease_guard(self) -> None:
        """Cancel the steps of every instance whose lease runs out, by this worker's clock, before it is renewed."""
        margin = min(0.5, self.settings.lease_seconds / 10)
        while True:
            await asyncio.sleep(margin / 2)
            now = time.monotonic()
            expired = [key for key, end in self._lease_ends.items() if end - margin <= now]
            for instance_id in expired:
                del self._lease_ends[instance_id]
                task = self._tasks.get(instance_id)
                if task is not None and not task.done():
                    log.warning(
                        "instance %s: its lease runs out before the database confirmed a renewal; stopping its steps",
                        instance_id,
                    )
                    task.cancel()

    def _keep_blocked_lease(self, instance_id: str) -> None:
        """Renew one lease from the watchdog's thread, while a step of the instance blocks the event loop."""
        key = uuid.UUID(instance_id)
        token = self._held.get(key)
        if token is not None:
            sent = time.monotonic()
            if renew_leases_blocking(self.settings.database_url, {key: token}, self.settings.lease_seconds):
                self._lease_ends[key] = sent + self.settings.lease_seconds

    async def _release(self, leases: dict[uuid.UUID, int]) -> None:
        if not leases:
            return
        try:
            released = await self.store.release_leases(leases)
            log.info("handed back %d of %d instances", len(released), len(leases))
        except Exception as exc:
            log.warning("handing back %d instances failed (%s); their leases will expire", len(leases), exc)

    async def _drain(self) -> None:
        """Give running steps the grace period to finish."""
        if self._tasks:
            log.info(
                "stopping: waiting up to %.0fs for %d running steps",
                self.settings.shutdown_grace_seconds,
                len(self._tasks),
            )
            await asyncio.wait(list(self._tasks.values()), timeout=self.settings.shutdown_grace_seconds)

    async def _cancel_running(self) -> None:
        tasks = list(self._tasks.values())
        held = dict(self._held)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._release(held)

    async def _release_held(self) -> None:
        await self._release(dict(self._held))
        self._held.clear()
