"""Executor: what a worker's held instances share, and the entry point that drives one of them.

Each claimed instance gets an :class:`~postgit.engine.driver.InstanceDriver`; they share the definitions
(read once per version), the group committer, the plugin step runner and the engine's own node types.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from postgit.clock import SYSTEM_CLOCK, Clock
from postgit.db.store import Row, Store
from postgit.definition import ANY_WORKER, ENGINE_TYPES, WorkflowDefinition
from postgit.engine.committer import GroupCommitter
from postgit.engine.deadlines import StepDeadlines
from postgit.engine.driver import EVENT_FLUSH_SECONDS, HeldInstance, InstanceDriver
from postgit.engine.loop_watch import LoopWatchdog
from postgit.engine.plugin_check import PluginVersionCheck
from postgit.engine.steps import PluginSteps
from postgit.engine.waits import EngineNodes
from postgit.registry import NodeRegistry
from postgit.service import WorkflowService
from postgit.tracing import engine_tracer


class DefinitionCache:
    """Definitions by (workflow, version); versions never change, so entries never go stale."""

    def __init__(self, store: Store, on_read: Callable[[Row], None] | None = None):
        self.store = store
        self.on_read = on_read
        """Called with each workflow row read (once per version)."""
        self._cache: dict[tuple[str, int], asyncio.Task[WorkflowDefinition]] = {}

    async def get(self, workflow: str, version: int) -> WorkflowDefinition:
        """The definition, read once however many instances ask for it at the same time."""
        key = (workflow, version)
        task = self._cache.get(key)
        if task is None or (task.done() and task.exception() is not None):
            task = self._cache[key] = asyncio.ensure_future(self._read(workflow, version))
        return await asyncio.shield(task)  # one caller being cancelled must not cancel the read for the others

    async def _read(self, workflow: str, version: int) -> WorkflowDefinition:
        row = await self.store.get_workflow(workflow, version)
        if row is None:
            raise LookupError(f"workflow {workflow} version {version} is not in the database")
        if self.on_read is not None:
            self.on_read(row)
        return WorkflowDefinition.from_json(row["definition"])


class Executor:
    """Runs held instances; shared by all of a worker's in-flight instances."""

    def __init__(
        self,
        *,
        store: Store,
        registry: NodeRegistry,
        committer: GroupCommitter,
        worker_id: str,
        lease_seconds: float,
        threads: ThreadPoolExecutor,
        on_timer: Callable[[float], None] | None = None,
        on_letting_go: Callable[[HeldInstance], None] | None = None,
        watchdog: LoopWatchdog | None = None,
        clock: Clock = SYSTEM_CLOCK,
        tracer_provider: Any = None,
        queues: frozenset[str] | None = None,
    ):
        # on_timer gets a timestamp on ``clock`` whenever an instance is parked until a time (a timer, a retry),
        # so that the worker wakes up then; on_letting_go gets an instance whose last write under its lease (it
        # finished, or is handed back) was submitted, so that the worker can claim another while it is written
        self.store = store
        self.registry = registry
        self.committer = committer
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.plugin_check = PluginVersionCheck(registry)
        self.definitions = DefinitionCache(store, on_read=self.plugin_check.check_workflow)
        self.deadlines = StepDeadlines()
        self.steps = PluginSteps(registry, threads, store, self.deadlines, watchdog, clock, lease_seconds=lease_seconds)
        # tracer_provider: OpenTelemetry's; None for the global one (steps are traced only when one is configured)
        self.steps.tracer = engine_tracer(tracer_provider)
        self.steps.rate_tokens = store.take_rate_token
        self.waits = EngineNodes(store, WorkflowService(store, registry), clock)
        self.on_timer = on_timer
        self.on_letting_go = on_letting_go
        self.node_types = frozenset(registry) | ENGINE_TYPES | {ANY_WORKER}
        """The node types this worker claims instances for."""
        self.queues = queues
        """The queues whose runs this worker runs (None: every queue)."""
        self.drivers: dict[uuid.UUID, InstanceDriver] = {}
        self.unwritten_starts: set[InstanceDriver] = set()
        """Drivers holding the starts of steps that no write has carried yet."""

    def can_run(self, node_type: str) -> bool:
        return node_type in self.registry or node_type in ENGINE_TYPES

    def serves(self, queue: str) -> bool:
        """Whether this worker runs the runs of ``queue``."""
        return self.queues is None or queue in self.queues

    def note_timer(self, at: float) -> None:
        if self.on_timer is not None:
            self.on_timer(at)

    def letting_go(self, held: HeldInstance) -> None:
        """``held``'s last write under its lease is submitted (see ``on_letting_go``)."""
        if self.on_letting_go is not None:
            self.on_letting_go(held)

    def poke(self, instance_id: uuid.UUID) -> None:
        """An event was sent to an instance: if this worker drives it, have it look."""
        driver = self.drivers.get(instance_id)
        if driver is not None:
            driver.poke()

    async def run_background(self) -> None:
        """What the executor does besides driving instances: enforce step timeouts, write waiting events."""
        await asyncio.gather(self.deadlines.watch_forever(), self.flush_events_forever())

    async def flush_events_forever(self) -> None:
        """Write the steps' starts that waited longer than ``EVENT_FLUSH_SECONDS`` for their results."""
        while True:
            await asyncio.sleep(EVENT_FLUSH_SECONDS / 2)
            due = time.monotonic() - EVENT_FLUSH_SECONDS
            for driver in [d for d in self.unwritten_starts if d.starts_since is not None and d.starts_since <= due]:
                driver.flush_starts()

    async def run(self, held: HeldInstance) -> None:
        """Drive ``held`` until it is parked, finishes, or its lease is lost."""
        definition = await self.definitions.get(held.workflow, held.version)
        driver = self.drivers[held.id] = InstanceDriver(self, held, definition)
        try:
            await driver.run()
        finally:
            if self.drivers.get(held.id) is driver:
                del self.drivers[held.id]
