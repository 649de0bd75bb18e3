"""The leaf node types the engine runs itself: ``WaitForEvent`` and ``SubWorkflow``.

Both wait on something only the database knows of: an event sent to the API (a row of ``signals``), or a child
instance finishing (which signals its parent). A run that finds nothing yet suspends with the event it waits for;
the instance is woken when one arrives, and :meth:`EngineNodes.check_waits` hands the events to the waiting runs.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from postgit.clock import SYSTEM_CLOCK, Clock
from postgit.db.store import Row, Store
from postgit.decider import ReadyRun, Scope, WaitingRun
from postgit.engine.steps import StepResult, completed, failed, suspended
from postgit.engine_types import SubWorkflowParams, WaitForEventParams
from postgit.errors import PostgitError
from postgit.outcomes import FatalError
from postgit.resolve import resolve_params
from postgit.runs import LeafRecord

CHILD_EVENT = "postgit.child"
"""The event a finished child instance sends its parent, keyed by the child's id."""

FINISHED = frozenset({"completed", "failed", "cancelled"})
MAX_KEY_LENGTH = 200


class ChildFailed(FatalError):
    """A SubWorkflow's child instance failed or was cancelled."""


class EngineNodes:
    """Runs ``WaitForEvent`` and ``SubWorkflow`` runs for the instances of one worker."""

    def __init__(self, store: Store, service: Any, clock: Clock = SYSTEM_CLOCK):
        # service: a postgit.service.WorkflowService, to start children exactly as the API starts instances
        self.store = store
        self.service = service
        self.clock = clock

    async def run(
        self,
        run: ReadyRun,
        instance_id: uuid.UUID,
        variables: dict[str, Any],
        taken: set[int],
        priority: int | None = None,
    ) -> StepResult:
        """One attempt of an engine run; ``taken``: events this instance's runs took and have not committed.

        ``priority``: the instance's, which a child it starts takes too (None: the default).
        """
        if run.node.type == "WaitForEvent":
            return await self._wait_for_event(run, instance_id, variables, taken)
        return await self._sub_workflow(run, instance_id, variables, priority)

    async def check_waits(
        self,
        instance_id: uuid.UUID,
        waits: list[WaitingRun],
        records: dict[str, LeafRecord],
        taken: set[int],
        known: tuple[int, list[Row]] | None = None,
    ) -> tuple[int, list[StepResult]]:
        """Hand the events that arrived to the runs waiting for them, oldest event first.

        ``known``: the instance's signal_seq and pending events as its claim read them, when they are that fresh;
        otherwise they are read now. Returns the signal_seq as of the check, and a result per run that got its
        event.
        """
        if known is not None:
            seq, signals = known
        else:
            names = {wait.event for wait in waits if wait.event}
            keys = {(wait.event, wait.event_key) for wait in waits if wait.event and wait.event_key is not None}
            seq, signals = await self.store.pending_signals(instance_id, names, keys)
        results = []
        for wait in waits:
            signal = _first_match(signals, wait.event, wait.event_key, taken)
            if signal is None:
                continue
            taken.add(signal["id"])
            record = records[wait.key]
            run = ReadyRun(wait.key, wait.node, Scope(), record.attempt, record)
            started_at = self.clock.now()
            if wait.node.type == "SubWorkflow":
                child = await self.store.get_instance(uuid.UUID(str(wait.event_key)))
                results.append(_child_result(run, started_at, child, signal["id"], now=self.clock.now()))
            else:
                output = {"timed_out": False, "data": signal["data"]}
                results.append(completed(run, started_at, output, now=started_at, deliveries=[signal["id"]]))
        return seq, results

    async def keyed_events_waiting(self, instance_id: uuid.UUID, keys: Iterable[tuple[str, str]]) -> bool:
        """Whether an event sent by key to one of these (name, key) pairs awaits the instance."""
        _, signals = await self.store.pending_signals(instance_id, (), keys)
        return bool(signals)

    async def _wait_for_event(
        self, run: ReadyRun, instance_id: uuid.UUID, variables: dict[str, Any], taken: set[int]
    ) -> StepResult:
        started_at = self.clock.now()
        try:
            params = resolve_params(run.node, WaitForEventParams, variables)
        except FatalError as exc:
            return failed(run, started_at, exc, now=started_at)
        record = run.record if run.record is not None and run.record.status == "suspended" else None
        if record is not None:
            due_at = record.due_at
        else:
            due_at = started_at + timedelta(seconds=params.timeout) if params.timeout is not None else None
        common = {"params": params.model_dump(mode="json")}
        keys = [(params.event, params.key)] if params.key is not None else []
        _, signals = await self.store.pending_signals(instance_id, [params.event], keys)
        signal = _first_match(signals, params.event, params.key, taken)
        if signal is not None:
            taken.add(signal["id"])
            output = {"timed_out": False, "data": signal["data"]}
            return completed(run, started_at, output, now=started_at, deliveries=[signal["id"]], **common)
        if due_at is not None and due_at <= started_at:
            return completed(run, started_at, {"timed_out": True, "data": None}, now=started_at, **common)
        resume = {"event": params.event, "key": params.key}
        return suspended(run, started_at, due_at, wait_event=params.event, wait_key=params.key, resume=resume, **common)

    async def _sub_workflow(
        self, run: ReadyRun, instance_id: uuid.UUID, variables: dict[str, Any], priority: int | None
    ) -> StepResult:
        started_at = self.clock.now()
        secrets: list[str] = []
        try:
            params = resolve_params(run.node, SubWorkflowParams, variables, secrets)
        except FatalError as exc:
            return failed(run, started_at, exc, now=started_at, secrets=secrets)
        common = {"params": params.model_dump(mode="json"), "secrets": secrets}
        try:
            row, _ = await self.service.start(
                params.workflow,
                params.input,
                idempotency_key=_child_key(instance_id, run.key),
                version=params.version,
                parent=(instance_id, run.key, params.on_parent_cancel == "cancel"),
                priority=priority,
            )
        except PostgitError as exc:
            failure = FatalError(f"cannot start the child instance: {exc}")
            return failed(run, started_at, failure, now=self.clock.now(), **common)
        child_id = row["id"]
        if not params.wait:
            return completed(run, started_at, {"child_id": str(child_id)}, now=self.clock.now(), **common)
        child = await self.store.get_instance(child_id)
        if child is not None and child["status"] in FINISHED:
            return _child_result(run, started_at, child, None, now=self.clock.now(), **common)
        resume = {"child_id": str(child_id), "workflow": params.workflow}
        return suspended(run, started_at, None, wait_event=CHILD_EVENT, wait_key=str(child_id), resume=resume, **common)


def _first_match(signals: list[Row], event: str | None, key: str | None, taken: set[int]) -> Row | None:
    for signal in signals:
        if signal["id"] in taken or signal["name"] != event:
            continue
        if signal["keyed"] or signal["key"] is not None:
            if signal["key"] == key:
                return signal
        else:
            return signal
    return None


def _child_result(
    run: ReadyRun, started_at: datetime, child: Row | None, signal_id: int | None, *, now: datetime, **fields: Any
) -> StepResult:
    deliveries = [signal_id] if signal_id is not None else []
    if child is None:
        failure = ChildFailed("the child instance no longer exists")
        return failed(run, started_at, failure, now=now, deliveries=deliveries, **fields)
    if child["status"] == "completed":
        return completed(run, started_at, child["state"], now=now, deliveries=deliveries, **fields)
    error = child.get("error") or {}
    message = error.get("message") if isinstance(error, dict) else None
    what = f"child instance {child['id']} of workflow '{child['workflow']}'"
    if child["status"] == "cancelled":
        failure = ChildFailed(f"{what} was cancelled", details={"child_id": str(child["id"])})
    else:
        failure = ChildFailed(f"{what} failed: {message}", details={"child_id": str(child["id"]), "error": error})
    return failed(run, started_at, failure, now=now, deliveries=deliveries, **fields)


def _child_key(instance_id: uuid.UUID, run_key: str) -> str:
    """The child's idempotency key: one child per parent run, however often the run is tried."""
    key = f"{instance_id}:{run_key}"
    if len(key) <= MAX_KEY_LENGTH:
        return key
    return f"{instance_id}:{hashlib.sha256(run_key.encode()).hexdigest()[:40]}"
