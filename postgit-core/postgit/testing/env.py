"""PostgitEnv: a real engine in this process, on a database of its own, with time that skips ahead.

The env runs a :class:`~postgit.engine.Worker` and a :class:`~postgit.service.WorkflowService` on an event loop in
a thread of their own, so a test calls it synchronously, from a plain or an ``async`` test alike. Deploys and starts
go through the service as the API's do; the worker claims, runs and commits as it would in production.

Time skips: whenever the engine has nothing to do (no instance is pending or running) and something waits for a
time (a ``Sleep``, a handler's ``Suspended(until=...)``, a retry's backoff, a ``WaitForEvent`` timeout, an
instance's deadline), the env moves its virtual clock to the earliest such time at once and wakes the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import types
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from psycopg_pool import AsyncConnectionPool

from postgit.db import Store, open_pool
from postgit.definition import WorkflowDefinition, load_definition_file
from postgit.engine import Worker
from postgit.engine.channels import WORK_CHANNEL
from postgit.plugins import load_registry
from postgit.service import WorkflowService, parse_instance_id
from postgit.settings import WorkerSettings
from postgit.testing.clock import SET_OFFSET, VirtualClock
from postgit.testing.database import KitDatabase
from postgit.testing.errors import InstanceStuck, PostgitTestingError, WaitTimeout
from postgit.testing.instances import Instance
from postgit.testing.mocks import Mock, mockable

T = TypeVar("T")

log = logging.getLogger("postgit.testing")

DEFAULT_TIMEOUT = 30.0
"""Real seconds :meth:`PostgitEnv.run` and :meth:`PostgitEnv.wait` give an instance to finish."""
MAX_SKIPS = 10_000
"""Time skips one wait may make: past this, an instance that keeps setting timers is reported, not waited on."""
CLOCK_MARGIN = 0.001
"""Seconds the clock is moved past a due time, so that it is due whatever the rounding of either clock."""
POOL_MAX = 6
SHUTDOWN_GRACE = 2.0
"""Real seconds the steps still running when the env closes (a test that failed early) get to finish."""
FINISHED = frozenset({"completed", "failed", "cancelled"})
NEVER = datetime.fromisoformat("9999-01-01T00:00:00+00:00")
"""Due times from here on are the engine's "only an event wakes it"."""

IDLE = """
SELECT count(*) FILTER (WHERE status IN ('pending', 'running')) AS busy,
       min(least(run_at, deadline_at)) FILTER (WHERE status = 'waiting') AS next_due,
       now() AS now
FROM postgit.instances WHERE status IN ('pending', 'running', 'waiting')
"""
"""Whether the engine has work (``busy``), and when the earliest waiting instance is due, on the virtual clock."""
NOTIFY = f"SELECT pg_notify('{WORK_CHANNEL}', %(node_types)s)"


class PostgitEnv:
    """A Postgit engine for tests; use it as a context manager, or through the ``postgit_env`` pytest fixture.

    Args:
        database_url: the PostgreSQL server to create the env's database on; default ``DATABASE_URL``, else an
            embedded server (``pip install 'postgit-core[testing]'``). The database is dropped on close.
        database: a :class:`KitDatabase` to use instead (emptied first, kept on close): the fixture's way of
            creating one database per test session.
        plugins: plugin objects (modules with ``@postgit.hookimpl`` functions) to load besides the installed ones.

    Example:
        >>> with PostgitEnv() as env:  # doctest: +SKIP
        ...     env.mock("HitEndpoint", node="fetch", returns={"status": 200, "body": {"ok": True}})
        ...     instance = env.run(workflow(), {"name": "Ada"})
        ...     assert instance.status == "completed"
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        database: KitDatabase | None = None,
        plugins: Iterable[object] = (),
    ):
        self._database_url = database_url
        self._database = database
        self._owns_database = database is None
        self.registry, self._mocks = mockable(load_registry(plugins))
        """The installed node types (and ``plugins``'), each handler standing aside for the env's mocks."""
        self.clock = VirtualClock()
        """The env's clock: the system's time plus the time skipped so far."""
        self._pool: AsyncConnectionPool | None = None
        self._store: Store | None = None
        self._service: WorkflowService | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._worker: Worker | None = None
        self._worker_task: asyncio.Task[None] | None = None
        self._nodes: set[tuple[str, str]] = set()
        """(node type, node id) of every node of the workflows deployed through the env."""

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def __enter__(self) -> PostgitEnv:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def open(self) -> None:
        """Create (or empty) the database and start the engine."""
        if self._loop is not None:
            return
        self.clock = VirtualClock()
        if self._database is None:
            self._database = KitDatabase.create(self._database_url)
        else:
            self._database.reset()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="postgit-testing", daemon=True)
        self._thread.start()
        try:
            self.call(self._start_engine(), timeout=DEFAULT_TIMEOUT)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop the engine (and drop the database the env created)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._stop_engine(), loop).result(DEFAULT_TIMEOUT)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(DEFAULT_TIMEOUT)
            self._loop = self._thread = None
            if self._owns_database and self._database is not None:
                self._database.drop()
                self._database = None

    @property
    def database(self) -> KitDatabase:
        """The env's database (``name``, ``url``), once the env is open."""
        if self._database is None:
            raise PostgitTestingError("the env is not open: use it in a with block, or call open() first")
        return self._database

    @property
    def store(self) -> Store:
        """The engine's store (every read and write of its tables), while the env is open."""
        if self._store is None:
            raise PostgitTestingError("the env is not open: use it in a with block, or call open() first")
        return self._store

    @property
    def service(self) -> WorkflowService:
        """The service the env deploys and starts with, as the API server does, while the env is open."""
        if self._service is None:
            raise PostgitTestingError("the env is not open: use it in a with block, or call open() first")
        return self._service

    def _serve(self) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()

    async def _start_engine(self) -> None:
        assert self._database is not None
        url = self._database.url
        self._pool = await open_pool(url, min_size=1, max_size=POOL_MAX, name="postgit-testing")
        self._store = Store(self._pool)
        self._service = WorkflowService(self._store, self.registry)
        settings = WorkerSettings(
            database_url=url,
            poll_seconds=1.0,
            retention_seconds=None,
            pool_max_size=POOL_MAX,
            shutdown_grace_seconds=SHUTDOWN_GRACE,
        )
        self._worker = Worker(store=self._store, registry=self.registry, settings=settings, clock=self.clock)
        self._worker_task = asyncio.create_task(self._worker.run(), name="postgit-testing-worker")
        started = asyncio.create_task(self._worker.started.wait())
        await asyncio.wait([started, self._worker_task], return_when=asyncio.FIRST_COMPLETED)
        started.cancel()
        self._check_engine()

    async def _stop_engine(self) -> None:
        if self._worker is not None and self._worker_task is not None:
            self._worker.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._worker_task, DEFAULT_TIMEOUT)
        self._store = self._service = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def call(self, coroutine: Awaitable[T], timeout: float | None = None) -> T:
        """Run ``coroutine`` on the engine's loop and wait for its result (``timeout`` real seconds at most).

        For what the env has no method of its own for: ``env.call(env.store.events_since(uuid.UUID(id)))``.
        """
        if self._loop is None:
            if asyncio.iscoroutine(coroutine):
                coroutine.close()
            raise PostgitTestingError("the env is not open: use it in a with block, or call open() first")
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)  # type: ignore[arg-type]
        return future.result(timeout)

    def _check_engine(self) -> None:
        task = self._worker_task
        if task is not None and task.done():
            error = None if task.cancelled() else task.exception()
            raise PostgitTestingError(f"the engine stopped: {error or 'it was cancelled'}") from error

    # -- workflows and instances -------------------------------------------------------------------------------

    def deploy(self, workflow: Any, name: str | None = None) -> int:
        """Deploy ``workflow`` as ``name``; returns the version.

        ``workflow`` is what ``pst deploy`` takes, in any of its forms: an SDK node or ``Workflow``, its JSON, a
        ``workflow()`` function, a module with one, or the path of a ``.py`` or ``.json`` file. ``name``
        defaults to the module's or file's name, else ``"workflow"``.

        Raises:
            postgit.DefinitionError: the definition is invalid (every issue with its node id and field).
        """
        return self._deploy(workflow, name)[1]

    def _deploy(self, workflow: Any, name: str | None) -> tuple[str, int]:
        definition, default_name = _definition_of(workflow)
        name = name or default_name
        deployment = self.call(self.service.deploy(name, definition))
        row = self.call(self.store.get_workflow(name, deployment.version))
        assert row is not None
        parsed = WorkflowDefinition.from_json(row["definition"])
        self._nodes.update((node.type, node.id) for node in parsed.root.walk())
        return name, deployment.version

    def start(
        self, workflow: Any, input: Any = None, *, name: str | None = None, idempotency_key: str | None = None
    ) -> str:
        """Deploy ``workflow`` (see :meth:`deploy`; a name alone starts what is deployed) and start an instance.

        Returns its id at once; :meth:`wait` runs it to the end.
        """
        if isinstance(workflow, str) and not _is_workflow_file(workflow):
            name = workflow
        else:
            name, _ = self._deploy(workflow, name)
        self._check_mocks()
        row, _ = self.call(self.service.start(name, input, idempotency_key=idempotency_key))
        return str(row["id"])

    def run(
        self, workflow: Any, input: Any = None, *, name: str | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> Instance:
        """Deploy ``workflow``, start it with ``input`` and run it to the end, skipping time; the finished instance.

        Raises:
            InstanceStuck: it waits for an event that nothing will send (use :meth:`start`, :meth:`send_event`
                and :meth:`wait`).
            WaitTimeout: it did not finish within ``timeout`` real seconds.
        """
        return self.wait(self.start(workflow, input, name=name), timeout=timeout)

    def wait(self, instance_id: str, *, timeout: float = DEFAULT_TIMEOUT) -> Instance:
        """Run the engine, skipping time, until the instance finishes (completed, failed or cancelled).

        Raises:
            InstanceStuck: it (or what it waits on) waits for an event, and no timer is left to skip to.
            WaitTimeout: it did not finish within ``timeout`` real seconds.
        """
        key = parse_instance_id(instance_id)

        async def finished() -> bool:
            row = await self.store.get_instance(key)
            if row is None:
                raise PostgitTestingError(f"instance {instance_id} does not exist")
            return row["status"] in FINISHED

        self.call(self._drive(finished, until=None, seconds=timeout, waiting_for=key))
        return self.instance(instance_id)

    def advance(self, seconds: float, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Let ``seconds`` of virtual time pass: everything that comes due meanwhile runs, in order of due time."""
        if seconds < 0:
            raise PostgitTestingError(f"time only moves forward: advance({seconds}) is in the past")

        async def never() -> bool:
            return False

        until = self.clock.now() + timedelta(seconds=seconds)
        self.call(self._drive(never, until=until, seconds=timeout, waiting_for=None))

    def instance(self, instance_id: str) -> Instance:
        """The instance as it stands now, with every attempt of its steps."""
        key = parse_instance_id(instance_id)

        async def read() -> Instance:
            row = await self.store.get_instance(key)
            if row is None:
                raise PostgitTestingError(f"instance {instance_id} does not exist")
            steps, children = await asyncio.gather(self.store.list_steps(key), self.store.list_children(key))
            return Instance.from_rows(row, steps, children)

        return self.call(read())

    def send_event(self, instance_id: str, name: str, data: Any = None, *, event_id: str | None = None) -> None:
        """Send the event ``name`` to an instance, as ``pst event send`` does (kept if it does not wait yet)."""
        self.call(self.service.send_event(instance_id, name, data, event_id=event_id))

    def send_keyed_event(self, name: str, key: str, data: Any = None, *, event_id: str | None = None) -> None:
        """Send the event ``name`` to every instance that waits on it with ``key``, now or later."""
        self.call(self.service.send_keyed_event(name, key, data, event_id=event_id))

    def cancel(self, instance_id: str) -> None:
        """Cancel an unfinished instance (and its children, unless they were started to be abandoned)."""
        self.call(self.service.cancel(instance_id))

    def outbox(self) -> list[dict[str, Any]]:
        """The emails parked in the outbox (no ``POSTGIT_SMTP_URL``), oldest first: ``to``, ``subject``, ``body``..."""
        return [row["message"] for row in self.call(self.store.list_outbox(limit=10_000))]

    def now(self) -> datetime:
        """The current time on the env's virtual clock."""
        return self.clock.now()

    # -- mocks -------------------------------------------------------------------------------------------------

    def mock(
        self,
        node_type: str,
        *,
        node: str | None = None,
        returns: Any = None,
        raises: BaseException | None = None,
        side_effect: Callable[[Any, Any], Any] | Iterable[Any] | None = None,
    ) -> Mock:
        """Stand in for ``node_type``'s handler, for every node of the type or for ``node`` only.

        The mock gets the params as the handler would (refs and templates resolved, checked against the type's
        model) and records each call in :attr:`Mock.calls`. It returns ``returns`` (an output, or
        ``postgit.Completed``/``postgit.Suspended``), or raises ``raises`` (``postgit.RetryableError(...)`` is
        retried by the node's retry policy, ``postgit.FatalError(...)`` fails the step at once), or calls
        ``side_effect(ctx, params)``, or takes the next of a list of responses per call (exceptions are raised;
        the last one repeats). A mock for a node wins over one for its whole type; a later mock replaces an
        earlier one for the same type and node.
        """
        return self._mocks.add(Mock(node_type, node, returns=returns, raises=raises, side_effect=side_effect))

    def _check_mocks(self) -> None:
        for mock in self._mocks.for_nodes():
            if (mock.node_type, mock.node) not in self._nodes:
                same_type = sorted(node_id for node_type, node_id in self._nodes if node_type == mock.node_type)
                raise PostgitTestingError(
                    f"mock('{mock.node_type}', node='{mock.node}') matches no node of the workflows deployed: "
                    f"their {mock.node_type} nodes are {', '.join(repr(n) for n in same_type) or 'none'}"
                )

    # -- driving time ------------------------------------------------------------------------------------------

    async def _drive(
        self,
        done: Callable[[], Awaitable[bool]],
        *,
        until: datetime | None,
        seconds: float,
        waiting_for: uuid.UUID | None,
    ) -> None:
        """Let the engine work until ``done()``; whenever it is idle, skip to the next due time (up to ``until``)."""
        give_up = time.monotonic() + seconds
        skips = 0
        pause = 0.002
        while True:
            self._check_engine()
            if await done():
                return
            async with self.store.pool.connection() as conn:
                idle = await (await conn.execute(IDLE)).fetchone()
            assert idle is not None
            next_due, now = idle["next_due"], idle["now"]
            if idle["busy"] == 0 and (next_due is None or next_due > now):
                if until is not None and (next_due is None or next_due > until):
                    if now >= until:
                        return
                    next_due = until
                elif next_due is None:
                    continue  # nothing is active: what was waited on finished since done() looked
                elif next_due >= NEVER:
                    raise await self._stuck(waiting_for)
                skips += 1
                if skips > MAX_SKIPS:
                    raise PostgitTestingError(
                        f"gave up after skipping time {MAX_SKIPS} times: something keeps setting timers "
                        f"(the clock is at {self.clock.now().isoformat()})"
                    )
                await self._set_clock(next_due)
                pause = 0.002
                continue
            if time.monotonic() > give_up:
                what = f"instance {waiting_for} did not finish" if waiting_for else "the engine did not settle"
                raise WaitTimeout(f"{what} within {seconds:g}s (real time)")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)

    async def _set_clock(self, moment: datetime) -> None:
        """Move the virtual clock (Python's and the database's) to just past ``moment`` and wake the worker."""
        offset = self.clock.offset_for(moment) + CLOCK_MARGIN
        self.clock.set_offset(offset)
        assert self._worker is not None
        async with self.store.pool.connection() as conn, conn.transaction():
            await conn.execute(SET_OFFSET, {"offset": offset})
            await conn.execute(NOTIFY, {"node_types": ",".join(sorted(self._worker.node_types))})
        log.debug("skipped time to %s", self.clock.now().isoformat())

    async def _stuck(self, instance_id: uuid.UUID | None) -> InstanceStuck:
        why = "instances wait for events"
        if instance_id is not None:
            row = await self.store.get_instance(instance_id)
            reason = (row or {}).get("wait_reason") or "it waits"
            why = f"instance {instance_id} waits and nothing is due: {reason}"
        return InstanceStuck(
            f"{why}; send the event with env.send_event() or env.send_keyed_event() (start the instance with "
            "env.start() and wait for it with env.wait())"
        )


def _definition_of(workflow: Any) -> tuple[dict[str, Any], str]:
    """A workflow's definition JSON and the name it is deployed under by default."""
    if isinstance(workflow, dict):
        return workflow, "workflow"
    if isinstance(workflow, str | Path):
        if not _is_workflow_file(workflow):
            raise PostgitTestingError(f"{workflow}: not a .py or .json workflow file")
        return load_definition_file(workflow), Path(workflow).stem
    if isinstance(workflow, types.ModuleType):
        build = getattr(workflow, "workflow", None)
        if not callable(build):
            raise PostgitTestingError(f"module {workflow.__name__} has no workflow() function")
        return _definition_of(build())[0], workflow.__name__.rsplit(".", 1)[-1]
    to_json = getattr(workflow, "to_json", None)
    if callable(to_json):
        return to_json(), "workflow"
    if callable(workflow):
        return _definition_of(workflow())[0], "workflow"
    raise PostgitTestingError(
        f"cannot deploy {type(workflow).__name__}: give an SDK node or Workflow, its JSON, a workflow() function, "
        "a module with one, or a .py or .json file"
    )


def _is_workflow_file(value: str | Path) -> bool:
    return Path(value).suffix in (".py", ".json")
