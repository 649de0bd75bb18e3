"""Executor: drives one claimed instance from node to node while the worker holds its lease.

For each node: resolve its params against the state, call its handler, and map the outcome to one fenced write
(submitted to the group committer). Only after that write commits does the next node start; when the lease turns
out to be lost, the executor stops and writes nothing more.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from postgit.db.store import Store
from postgit.definition import NodeSpec, WorkflowDefinition
from postgit.engine.committer import GroupCommitter
from postgit.interpreter import next_node
from postgit.nodes import NodeType, StepContext
from postgit.outcomes import Completed, FatalError, RetryableError, StepFailure, Suspended
from postgit.paths import PathError, parse_path
from postgit.registry import NodeRegistry
from postgit.resolve import redact, resolve_params

log = logging.getLogger("postgit.worker")

MAX_OUTPUT_BYTES = 1_000_000
MAX_STATE_BYTES = 10_000_000
_REDACTED_FIELDS = ("state", "step", "error", "events", "resume", "wait_reason")


@dataclass
class HeldInstance:
    """An instance this worker holds a lease on, as the claim returned it and as it advances."""

    id: uuid.UUID
    lease_token: int
    workflow: str
    version: int
    state: dict[str, Any]
    done: list[str]
    current_node: str
    attempt: int
    resume: dict[str, Any] | None = None

    @classmethod
    def from_claim(cls, row: dict[str, Any]) -> HeldInstance:
        return cls(
            id=row["id"],
            lease_token=row["lease_token"],
            workflow=row["workflow"],
            version=row["version"],
            state=row["state"],
            done=list(row["done"]),
            current_node=row["current_node"],
            attempt=row["attempt"],
            resume=row["resume"],
        )


@dataclass
class Transition:
    """What one step's outcome does to the instance: the row for ``commit_steps`` and whether to go on."""

    item: dict[str, Any]
    next_node: NodeSpec | None = None
    new_state: dict[str, Any] | None = None
    wake_at: float | None = field(default=None)


class DefinitionCache:
    """Definitions by (workflow, version); versions never change, so entries never go stale."""

    def __init__(self, store: Store):
        self.store = store
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
    ):
        # on_timer gets a wall-clock timestamp whenever a step schedules its instance for later (a suspension or
        # a retry), so that the worker wakes up then
        self.store = store
        self.registry = registry
        self.committer = committer
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.threads = threads
        self.definitions = DefinitionCache(store)
        self.on_timer = on_timer

    async def run(self, held: HeldInstance) -> None:
        """Execute nodes of ``held`` until it finishes, waits, fails, is handed back, or its lease is lost."""
        definition = await self.definitions.get(held.workflow, held.version)
        while True:
            node = definition.nodes[held.current_node]
            transition = await self._run_step(held, node, definition)
            if not await self.committer.submit(transition.item):
                log.warning("instance %s: lease lost at node '%s'; nothing more is written", held.id, node.id)
                return
            if transition.wake_at is not None and self.on_timer is not None:
                self.on_timer(transition.wake_at)
            if transition.next_node is None or transition.item["status"] != "running":
                return
            held.done.append(node.id)
            held.state = transition.new_state if transition.new_state is not None else held.state
            held.current_node = transition.next_node.id
            held.attempt = 1
            held.resume = None

    async def _run_step(self, held: HeldInstance, node: NodeSpec, definition: WorkflowDefinition) -> Transition:
        secrets: list[str] = []
        transition = await self._attempt(held, node, definition, secrets)
        if secrets:  # what is stored never holds a secret's value
            for key in _REDACTED_FIELDS:
                transition.item[key] = redact(transition.item[key], secrets)
            transition.new_state = redact(transition.new_state, secrets)
        if transition.item["status"] == "failed":
            log.warning("instance %s failed at node '%s': %s", held.id, node.id, transition.item["error"]["message"])
        return transition

    async def _attempt(
        self, held: HeldInstance, node: NodeSpec, definition: WorkflowDefinition, secrets: list[str]
    ) -> Transition:
        node_type = self.registry.node_type(node.type)
        started_at = datetime.now(UTC)
        ctx = StepContext(
            instance_id=str(held.id),
            node_id=node.id,
            attempt=held.attempt,
            idempotency_key=f"{held.id}:{node.id}",
            logger=logging.LoggerAdapter(
                logging.getLogger(f"postgit.step.{node.type}"), {"instance_id": str(held.id), "node_id": node.id}
            ),
            resume=(held.resume or {}).get("data"),
            suspended_until=_parse_time((held.resume or {}).get("until")),
            outbox=self.store,
        )
        params_json: Any = None
        try:
            params = resolve_params(node, node_type.params, held.state, secrets)
            params_json = params.model_dump(mode="json")
            result = await self._call(node_type, node, ctx, params)
            if isinstance(result, Suspended):
                return self._suspended(held, node, result, started_at, params_json)
            output = result.output if isinstance(result, Completed) else result
            return self._completed(held, node, definition, output, started_at, params_json)
        except FatalError as exc:
            return self._failed(held, node, node_type, exc, started_at, params_json, retryable=False)
        except RetryableError as exc:
            return self._failed(held, node, node_type, exc, started_at, params_json, retryable=True)
        except TimeoutError:
            failure = RetryableError(f"step timed out after {node.timeout or node_type.timeout:g}s")
            return self._failed(held, node, node_type, failure, started_at, params_json, retryable=True)
        except Exception as exc:
            failure = RetryableError(f"{type(exc).__name__}: {exc}")
            log.info(
                "instance %s node '%s' attempt %d raised %s",
                held.id,
                node.id,
                held.attempt,
                redact(failure.message, secrets),
                exc_info=not secrets,  # a traceback's locals and messages could show a secret
            )
            return self._failed(held, node, node_type, failure, started_at, params_json, retryable=True)

    async def _call(self, node_type: NodeType, node: NodeSpec, ctx: StepContext, params: Any) -> Any:
        handler = node_type.handler
        if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(type(handler).__call__):
            call = handler(ctx, params)
        else:
            loop = asyncio.get_running_loop()
            call = loop.run_in_executor(self.threads, functools.partial(handler, ctx, params))
        async with asyncio.timeout(node.timeout or node_type.timeout):  # cheaper than wait_for: no extra task
            return await call

    def _base_item(self, held: HeldInstance, **fields: Any) -> dict[str, Any]:
        item = {
            "id": str(held.id),
            "lease_token": held.lease_token,
            "state": None,
            "done_node": None,
            "current_node": held.current_node,
            "node_type": None,
            "attempt": held.attempt,
            "resume": None,
            "run_at": None,
            "run_in": None,
            "keep_lease": False,
            "error": None,
            "wait_reason": None,
            "step": None,
            "events": [],
        }
        item.update(fields)
        return item

    def _step_row(self, held: HeldInstance, node: NodeSpec, status: str, started_at: datetime, **fields: Any):
        row = {
            "node_id": node.id,
            "attempt": held.attempt,
            "status": status,
            "worker_id": self.worker_id,
            "started_at": started_at.isoformat(),
            "finished_at": datetime.now(UTC).isoformat() if status != "suspended" else None,
        }
        row.update(fields)
        return row

    def _completed(
        self,
        held: HeldInstance,
        node: NodeSpec,
        definition: WorkflowDefinition,
        output: Any,
        started_at: datetime,
        params_json: Any,
    ) -> Transition:
        try:
            output_text = json.dumps(output)
        except (TypeError, ValueError) as exc:
            raise_failure = FatalError(f"output is not JSON-serialisable: {exc}")
            return self._failed(held, node, None, raise_failure, started_at, params_json, retryable=False)
        if len(output_text) > MAX_OUTPUT_BYTES:
            failure = FatalError(f"output is {len(output_text)} bytes; the limit is {MAX_OUTPUT_BYTES}")
            return self._failed(held, node, None, failure, started_at, params_json, retryable=False)
        new_state = held.state
        if node.assign_to:
            try:
                new_state = parse_path(node.assign_to).write(held.state, output)
            except PathError as exc:
                failure = FatalError(f"field 'assignTo': {exc}")
                return self._failed(held, node, None, failure, started_at, params_json, retryable=False)
            state_size = len(json.dumps(new_state))
            if state_size > MAX_STATE_BYTES:
                failure = FatalError(f"state would grow to {state_size} bytes; the limit is {MAX_STATE_BYTES}")
                return self._failed(held, node, None, failure, started_at, params_json, retryable=False)
        done = [*held.done, node.id]
        following = next_node(definition, done, new_state)
        step = self._step_row(held, node, "completed", started_at, params=params_json, output=output)
        events: list[dict[str, Any]] = [
            {"kind": "step_completed", "node_id": node.id, "data": {"attempt": held.attempt}}
        ]
        fields: dict[str, Any] = {
            "state": new_state if node.assign_to else None,
            "done_node": node.id,
            "step": step,
            "events": events,
        }
        if following is None:
            events.append({"kind": "instance_completed", "node_id": None, "data": {}})
            fields.update(status="completed", current_node=None, attempt=1)
            return Transition(self._base_item(held, **fields))
        fields.update(current_node=following.id, node_type=following.type, attempt=1)
        if following.type in self.registry:
            events.append({"kind": "step_started", "node_id": following.id, "data": {"attempt": 1}})
            fields.update(status="running", keep_lease=True, run_in=self.lease_seconds)
        else:  # another worker must run it: hand the instance back
            fields.update(status="pending", run_in=0)
        return Transition(self._base_item(held, **fields), next_node=following, new_state=new_state)

    def _suspended(
        self, held: HeldInstance, node: NodeSpec, result: Suspended, started_at: datetime, params_json: Any
    ) -> Transition:
        until = result.until if result.until.tzinfo else result.until.replace(tzinfo=UTC)
        item = self._base_item(
            held,
            status="waiting",
            node_type=node.type,
            resume={"until": until.isoformat(), "data": result.data},
            run_at=until.isoformat(),
            wait_reason=f"node '{node.id}' waits until {until.isoformat()}",
            step=self._step_row(held, node, "suspended", started_at, params=params_json),
            events=[{"kind": "step_suspended", "node_id": node.id, "data": {"until": until.isoformat()}}],
        )
        return Transition(item, wake_at=until.timestamp())

    def _failed(
        self,
        held: HeldInstance,
        node: NodeSpec,
        node_type: NodeType | None,
        failure: StepFailure,
        started_at: datetime,
        params_json: Any,
        *,
        retryable: bool,
    ) -> Transition:
        node_type = node_type or self.registry.node_type(node.type)
        policy = node.retry or node_type.retry
        error = {
            "message": failure.message,
            "type": type(failure).__name__,
            "node_id": node.id,
            "attempt": held.attempt,
        }
        if failure.details is not None:
            error["details"] = failure.details
        step = self._step_row(held, node, "failed", started_at, params=params_json, error=error)
        delay = policy.next_delay(held.attempt) if retryable else None
        if delay is None:
            item = self._base_item(
                held,
                status="failed",
                error=error,
                step=step,
                events=[
                    {"kind": "step_failed", "node_id": node.id, "data": {"attempt": held.attempt, "error": error}},
                    {"kind": "instance_failed", "node_id": node.id, "data": {"error": error}},
                ],
            )
            return Transition(item)
        next_attempt = held.attempt + 1
        item = self._base_item(
            held,
            status="waiting",
            node_type=node.type,
            attempt=next_attempt,
            run_in=delay,
            error=error,
            wait_reason=f"node '{node.id}' retries in {delay:.1f}s (attempt {next_attempt} of {policy.max_attempts})",
            step=step,
            events=[
                {
                    "kind": "step_failed",
                    "node_id": node.id,
                    "data": {"attempt": held.attempt, "error": error, "retry_in": round(delay, 3)},
                }
            ],
        )
        return Transition(item, wake_at=datetime.now(UTC).timestamp() + delay)


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
