"""Worker: claims runnable instances and executes them, many at a time, until asked to stop.

Structure (procrastinate's and River's): supervised side tasks (group committer, lease and heartbeat renewal,
LISTEN) around a claim loop bounded by ``concurrency``. The claim loop wakes on NOTIFY, on a freed slot, at the
earliest due time it knows of, and otherwise polls on a jittered interval as a fallback only.

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

from postgit.db.store import Store
from postgit.definition import ANY_WORKER
from postgit.engine.committer import CommitUnknown, GroupCommitter
from postgit.engine.driver import HeldInstance
from postgit.engine.executor import Executor
from postgit.engine.listener import listen_for_work
from postgit.registry import NodeRegistry
from postgit.settings import WorkerSettings

log = logging.getLogger("postgit.worker")

MAX_CLAIM_BATCH = 200
MIN_IDLE_WAIT = 0.005


class Worker:
    """One worker process's engine; ``await worker.run()`` until :meth:`stop`."""

    def __init__(self, *, store: Store, registry: NodeRegistry, settings: WorkerSettings):
        self.store = store
        self.registry = registry
        self.settings = settings
        self.id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.committer = GroupCommitter(store)
        self.threads = ThreadPoolExecutor(max_workers=min(32, settings.concurrency), thread_name_prefix="postgit-step")
        self.executor = Executor(
            store=store,
            registry=registry,
            committer=self.committer,
            worker_id=self.id,
            lease_seconds=settings.lease_seconds,
            threads=self.threads,
            on_timer=self._note_timer,
        )
        self.node_types = self.executor.node_types
        self.registered_types = self.node_types - {ANY_WORKER}
        self._held: dict[uuid.UUID, int] = {}
        self._suspects: set[tuple[uuid.UUID, int]] = set()
        self._tasks: dict[uuid.UUID, asyncio.Task[None]] = {}
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
        await self.store.register_worker(self.id, self.registered_types)
        log.info("worker %s started with node types %s", self.id, ", ".join(sorted(self.registry)))
        side_tasks = [
            asyncio.create_task(self.committer.run(), name="committer"),
            asyncio.create_task(self._renew_loop(), name="renew"),
            asyncio.create_task(self.executor.run_background(), name="executor-background"),
            asyncio.create_task(
                listen_for_work(self.settings.database_url, self.node_types, self._wakeup, self.executor.poke),
                name="listener",
            ),
        ]
        claim_loop = asyncio.create_task(self._claim_loop(), name="claim-loop")
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
            self.threads.shutdown(wait=False, cancel_futures=True)
            log.info("worker %s stopped", self.id)

    # -- claiming ----------------------------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        self.started.set()
        while not self._stopping.is_set():
            # Clear before looking: a wake-up that arrives from here on is kept for the wait below.
            self._wakeup.clear()
            free = self.settings.concurrency - len(self._tasks)
            if free <= 0:
                await self._wait(None)
                continue
            try:
                claims = await self.store.claim_instances(
                    worker_id=self.id,
                    node_types=self.node_types,
                    limit=min(free, MAX_CLAIM_BATCH),
                    lease_seconds=self.settings.lease_seconds,
                )
            except Exception as exc:
                log.warning("claiming failed (%s); retrying", exc)
                await self._wait(1.0)
                continue
            for row in claims:
                self._start(HeldInstance.from_claim(row))
            if len(claims) == min(free, MAX_CLAIM_BATCH):
                continue  # there may be more due right now
            await self._wait(await self._idle_delay())

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
            self._held.pop(held.id, None)
            self._tasks.pop(held.id, None)
            self._wakeup.set()

    async def _idle_delay(self) -> float:
        """Seconds until the earliest known due time, capped by the jittered fallback poll."""
        poll = self.settings.poll_seconds * random.uniform(0.8, 1.0)
        candidates = [poll]
        try:
            next_run_at = await self.store.next_run_at(self.node_types)
        except Exception:
            next_run_at = None
        now = time.time()
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
        """Renew held leases and the worker's heartbeat every third of a lease; abandon leases that were lost."""
        interval = self.settings.lease_seconds / 3
        last_ok = time.monotonic()
        while True:
            await asyncio.sleep(interval)
            held = dict(self._held)
            try:
                await self.store.heartbeat_worker(self.id, self.registered_types)
                renewed = await self.store.renew_leases(held, self.settings.lease_seconds) if held else set()
                last_ok = time.monotonic()
            except Exception as exc:
                log.warning("renewing leases failed (%s)", exc)
                if time.monotonic() - last_ok > self.settings.lease_seconds:
                    log.error("could not renew leases for a whole lease period: abandoning running steps")
                    await self._cancel_running()
                continue
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
