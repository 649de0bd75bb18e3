"""InstanceDriver: runs one claimed instance while the worker holds its lease.

The loop: ask the decider what should run, start those runs (concurrently: parallel branches, loop items),
and whenever some finish, apply their results, decide again, and write everything in one fenced item (the
step rows, the decisions, the state, the events) before starting what the new decision makes ready. Nothing
that depends on a result starts before that result has committed. When nothing this worker can run is left,
the instance is parked: ``waiting`` until its earliest timer (or an event), or ``pending`` for a worker with
the node types it lacks. A lost lease stops the loop; the driver's runs are cancelled and nothing more is
written for the instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from postgit.clock import Clock
from postgit.db.records import CommitItem, EventRow, RunningRun, RunRow, StepRow
from postgit.decider import Decider, Plan, ReadyRun
from postgit.definition import ANY_QUEUE, ANY_WORKER, WorkflowDefinition, lane
from postgit.engine.committer import LOST, PAUSED
from postgit.engine.lost_attempts import lost_attempts
from postgit.engine.steps import StepResult, failed
from postgit.engine.waits import CHILD_EVENT
from postgit.metrics import EVENTS_DELIVERED, step_series
from postgit.outcomes import FatalError
from postgit.paths import PathError, parse_path
from postgit.runs import ControlRecord, RunView
from postgit.state_parts import StateSize, changed_keys
from postgit.tracing import instance_trace

if TYPE_CHECKING:
    from postgit.engine.executor import Executor

log = logging.getLogger("postgit.worker")

MAX_STATE_BYTES = 10_000_000
EVENT_FLUSH_SECONDS = 0.05
"""How long a step's start may wait to be written with its result (as one event) before it is written alone."""
NO_DUE_TIME = "9999-12-31T00:00:00+00:00"
"""``run_at`` of an instance that waits only for events: far enough never to come due."""


@dataclass
class HeldInstance:
    """An instance this worker holds a lease on, as the claim returned it."""

    id: uuid.UUID
    lease_token: int
    workflow: str
    version: int
    state: dict[str, Any]
    deadline_at: datetime | None = None
    parent_id: uuid.UUID | None = None
    signal_seq: int = 0
    traceparent: str | None = None
    """The W3C ``traceparent`` of the request that started it, if it had one."""
    priority: int | None = None
    """Its start's priority (1 first to 5 last), which the children it starts take too."""
    steps: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    signals: list[dict[str, Any]] = field(default_factory=list)
    """Events sent to it (or by the keys its runs wait on) that no run has taken, as the claim read them."""
    lost_by: str | None = None
    """The worker whose lease on it expired before this claim (None: no one held it)."""
    running_runs: list[RunningRun] | None = None
    """The runs ``lost_by`` wrote it was running (None: it wrote nothing since its own claim)."""

    @classmethod
    def from_claim(cls, row: dict[str, Any]) -> HeldInstance:
        return cls(
            id=row["id"],
            lease_token=row["lease_token"],
            workflow=row["workflow"],
            version=row["version"],
            state=row["state"],
            deadline_at=row.get("deadline_at"),
            parent_id=row.get("parent_id"),
            signal_seq=row.get("signal_seq") or 0,
            traceparent=row.get("traceparent"),
            priority=row.get("priority"),
            steps=row.get("steps") or [],
            runs=row.get("runs") or [],
            signals=row.get("signals") or [],
            lost_by=row.get("lost_by"),
            running_runs=row.get("running_runs"),
        )


class InstanceDriver:
    """Drives one held instance; see the module docstring."""

    def __init__(self, engine: Executor, held: HeldInstance, definition: WorkflowDefinition):
        self.engine = engine
        self.held = held
        self.key = str(held.id)
        self.definition = definition
        self.view = RunView.from_rows(held.state, held.steps, held.runs)
        self.decider = Decider(definition)
        self.trace = (
            instance_trace(held.id, held.workflow, held.version, held.traceparent)
            if engine.steps.tracer is not None
            else None
        )
        self.signal_seq = held.signal_seq
        self.tasks: dict[str, asyncio.Task[StepResult]] = {}
        self.finished: list[StepResult] = []
        self.failure: BaseException | None = None
        self.task: asyncio.Task[Any] | None = None
        """The task driving the instance (a run started without a task of its own runs in it)."""
        self.wakeup = asyncio.Event()
        self.check_events = True  # the instance may have been woken by an event
        self.claimed_signals: tuple[int, list[dict[str, Any]]] | None = (held.signal_seq, held.signals)
        self.taken: set[int] = set()
        # what the next write carries besides step results
        self.runs_to_record: dict[str, RunRow] = {}
        self.state_dirty = False
        self.stored_state = held.state
        """The state as the database holds it: a write stores the top-level keys that differ from it."""
        self.state_size = StateSize()
        self.events: list[EventRow] = []
        """Written with the next write of the instance: results, cancellations, the end."""
        self.starts: dict[str, EventRow] = {}
        """Steps started whose start is not written yet: it goes with the step's result, or is written alone."""
        self.starts_since: float | None = None
        """When the oldest of ``starts`` was logged (monotonic)."""
        self.written_since_claim = False
        """Whether a write under this lease recorded the runs in flight (before it, the claim stands for them)."""
        self.paused = False
        """The instance was paused: start nothing more, hand it back once the running steps are written."""
        self.pending_lost = False
        """Attempts charged to a lost worker wait to be written."""

    def poke(self) -> None:
        """An event was sent to the instance: look for it."""
        self.check_events = True
        self.wakeup.set()

    async def run(self) -> None:
        """Drive the instance until it is parked, finished, or its lease is lost."""
        self.task = asyncio.current_task()
        try:
            await self._drive()
        finally:
            self.engine.unwritten_starts.discard(self)
            await self._cancel_all()

    # -- the loop ----------------------------------------------------------------------------------------------

    async def _drive(self) -> None:
        self._charge_lost_attempts()
        while True:
            if self.failure is not None:
                raise self.failure
            now = self.engine.clock.now()
            results = [self._apply(result) for result in self._take_finished()]
            if self.held.deadline_at is not None and now >= self.held.deadline_at:
                await self._time_out(results)
                return
            plan = self._decide(now)
            if self.check_events:
                self.check_events = False
                found = await self._check_waits(plan)
                if found:
                    results.extend(self._apply(result) for result in found)
                    plan = self._decide(now)
            if plan.outcome is not None:
                await self._finish(plan, results)
                return
            self._cancel_unwanted(plan)
            to_start = [
                run for run in plan.ready if not self.paused and run.key not in self.tasks and self._can_run(run)
            ]
            if not to_start and not self.tasks:
                await self._park(plan, results)
                return
            # once a write under this lease recorded the runs in flight, a run starts only after a write that
            # records it too (before that write, the claim stands for the runs ready at the claim)
            must_write = bool(results or self.runs_to_record or self.state_dirty or self.pending_lost)
            must_write = must_write or bool(to_start and self.written_since_claim)
            if must_write and not await self._commit(
                self._item(plan, results, "running", running=self._running(to_start))
            ):
                return
            if self.paused:
                if not self.tasks:
                    await self._park(plan, [])
                    return
                to_start = []
            self._log_starts(to_start)
            if len(to_start) == 1 and not self.tasks and not plan.waiting and self.held.deadline_at is None:
                # nothing else can happen meanwhile: run it here, without a task of its own
                self.finished.append(await self._execute(to_start[0], self.task))
                continue
            for run in to_start:
                self._start(run)
            await self._wait(plan, now)

    def _can_run(self, run: ReadyRun) -> bool:
        """Whether this worker has the run's node type and serves its queue."""
        return self.engine.can_run(run.node.type) and self.engine.serves(self.definition.queue_of(run.node))

    def _blocked_reason(self, run: ReadyRun) -> str:
        where = f"node '{run.node.id}'{_run_suffix(run.key, run.node.id)}"
        if self.paused:
            return f"{where} runs once the instance is resumed"
        if not self.engine.can_run(run.node.type):
            return f"{where} needs a worker with node type '{run.node.type}'"
        return f"{where} needs a worker serving queue '{self.definition.queue_of(run.node)}'"

    def _lanes(self, runs: list[Any]) -> list[str]:
        """The lanes (queue and node type) of ``runs`` (ready or waiting runs), sorted."""
        return sorted({lane(self.definition.queue_of(run.node), run.node.type) for run in runs})

    def _decide(self, now: datetime) -> Plan:
        plan = self.decider.decide(self.view, now)
        for key, decision in plan.decisions.items():
            self.runs_to_record[key] = {
                "run_key": key,
                "node_id": plan.run_nodes[key],
                "decision": decision,
                "status": None,
                "output": None,
            }
            self.view.controls[key] = ControlRecord(key, decision=decision)
        for key, output in plan.completions.items():
            row = self.runs_to_record.setdefault(
                key, {"run_key": key, "node_id": plan.run_nodes[key], "decision": None, "status": None, "output": None}
            )
            row.update(status="completed", output=output)
            previous = self.view.controls.get(key)
            self.view.controls[key] = ControlRecord(key, previous.decision if previous else None, True, output)
        if plan.state is not self.view.state:
            self.view.state = plan.state
            self.state_dirty = True
        return plan

    async def _check_waits(self, plan: Plan) -> list[StepResult]:
        known, self.claimed_signals = self.claimed_signals, None  # only the first check can use the claim's read
        waits = [wait for wait in plan.waiting if wait.event is not None]
        if not waits:
            return []
        self.signal_seq, found = await self.engine.waits.check_waits(
            self.held.id, waits, self.view.leaves, self.taken, known
        )
        return found

    def _apply(self, result: StepResult) -> StepResult:
        """Apply a finished attempt to the view (and the state); returns it, or the failure it turned into."""
        if result.secrets:
            result = result.redacted()
        node = result.run.node
        if result.status == "completed" and node.assign_to and not result.run.scope.in_loop:
            try:
                state = parse_path(node.assign_to).write(self.view.state, result.output)
                size = self.state_size.of(state)
                if size > MAX_STATE_BYTES:
                    raise ValueError(f"state would grow to {size} bytes; the limit is {MAX_STATE_BYTES}")
            except (PathError, ValueError) as exc:
                message = f"field 'assignTo': {exc}" if isinstance(exc, PathError) else str(exc)
                failure = FatalError(message)
                result = failed(
                    result.run,
                    result.started_at,
                    failure,
                    now=self.engine.clock.now(),
                    params=result.params,
                    logs=result.logs,
                )
            else:
                self.view.state = state
                self.state_dirty = True
        self.view.leaves[result.key] = result.record()
        step_series(self.held.workflow, node.type).finished(
            result.status, result.due_at is not None, result.started_at, result.finished_at
        )
        if result.deliveries:
            EVENTS_DELIVERED.labels(self.held.workflow).inc(len(result.deliveries))
        self.events.append(_result_event(result, self.starts.pop(result.key, None), self.engine.clock))
        if result.status == "failed" and result.due_at is None:
            log.warning(
                "instance %s: run '%s' failed: %s", self.held.id, result.key, (result.error or {}).get("message")
            )
        return result

    def _cancel_unwanted(self, plan: Plan) -> None:
        """Cancel runs the decision no longer wants (a failed sibling, a winner elsewhere, a finished loop)."""
        if not self.tasks:
            return
        wanted = {run.key for run in plan.ready}
        self._cancel_runs([key for key in self.tasks if key not in wanted])

    def _cancel_runs(self, keys: list[str]) -> None:
        """Cancel running runs; their results are discarded and the next write logs that they were cancelled."""
        for key in keys:
            task = self.tasks.pop(key)
            task.cancel()
            node_id = _node_of(task)
            data = _run_data(key, node_id, getattr(task, "postgit_attempt", None))
            start = self.starts.pop(key, None)
            if start is not None:
                data["started_at"] = start["data"]["started_at"]
            self.events.append({"kind": "step_cancelled", "node_id": node_id, "data": data})

    # -- running steps -----------------------------------------------------------------------------------------

    def _start(self, run: ReadyRun) -> None:
        task = asyncio.create_task(self._execute(run), name=f"run-{self.held.id}-{run.key}")
        task.postgit_node_id = run.node.id  # type: ignore[attr-defined]
        task.postgit_attempt = run.attempt  # type: ignore[attr-defined]
        self.tasks[run.key] = task
        task.add_done_callback(lambda done, key=run.key: self._on_done(key, done))

    def _on_done(self, key: str, task: asyncio.Task[StepResult]) -> None:
        if self.tasks.get(key) is not task:
            return  # cancelled by a decision: its result is discarded
        del self.tasks[key]
        if task.cancelled():
            return
        if task.exception() is not None:
            self.failure = task.exception()
        else:
            self.finished.append(task.result())
        self.wakeup.set()

    async def _execute(self, run: ReadyRun, task: asyncio.Task[Any] | None = None) -> StepResult:
        """One attempt of ``run``; ``task`` is the task it runs in, when known (else it is looked up)."""
        variables = run.scope.variables(self.view.state)
        if run.node.is_engine_leaf:
            return await self.engine.waits.run(run, self.held.id, variables, self.taken, self.held.priority)
        return await self.engine.steps.run(run, self.key, variables, task, self.trace)

    def _take_finished(self) -> list[StepResult]:
        finished, self.finished = self.finished, []
        return finished

    async def _wait(self, plan: Plan, now: datetime) -> None:
        if self.finished or self.check_events or self.failure is not None:
            return
        dues = [wait.due_at for wait in plan.waiting if wait.due_at is not None]
        if self.held.deadline_at is not None:
            dues.append(self.held.deadline_at)
        timeout = max(0.0, (min(dues) - now).total_seconds()) if dues else None
        self.wakeup.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wakeup.wait(), timeout)

    async def _cancel_all(self) -> None:
        tasks = list(self.tasks.values())
        self.tasks.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- writing -----------------------------------------------------------------------------------------------

    async def _commit(self, item: CommitItem) -> bool:
        self.events = []  # they are the item's now
        if item["status"] != "running":
            self.engine.letting_go(self.held)  # the last write under this lease: its slot may be claimed again
        outcome = await self.engine.committer.submit_outcome(item)
        if outcome == LOST:
            log.warning("instance %s: lease lost; nothing more is written", self.held.id)
            return False
        if outcome == PAUSED and not self.paused:
            log.info("instance %s: paused; handing it back once its running steps are written", self.held.id)
            self.paused = True
        self.runs_to_record = {}
        if self.state_dirty:
            self.stored_state = self.view.state  # the state does not change while its write is under way
        self.state_dirty = False
        self.pending_lost = False
        self.written_since_claim = True
        if any(step.get("wait_key") is not None and step["status"] == "suspended" for step in item.get("steps", ())):
            self.check_events = True  # an event sent by key while the wait was being stored: look once more
        return True

    async def _park(self, plan: Plan, results: list[StepResult]) -> None:
        """Nothing this worker can run is left: hand the instance back, waiting or for another worker."""
        blocked = [run for run in plan.ready if self.paused or not self._can_run(run)]
        node_types = sorted({run.node.type for run in blocked} | {wait.node.type for wait in plan.waiting})
        reasons = [self._blocked_reason(run) for run in blocked]
        reasons += [
            f"node '{wait.node.id}'{_run_suffix(wait.key, wait.node.id)} {wait.reason}" for wait in plan.waiting
        ]
        fields: dict[str, Any] = {
            "node_types": node_types or [ANY_WORKER],
            "lanes": self._lanes([*blocked, *plan.waiting]) if node_types else [ANY_QUEUE],
            "wait_reason": "; ".join(reasons)[:2000],
        }
        if blocked:
            fields.update(status="pending", run_in=0.0)
        else:
            dues = [wait.due_at for wait in plan.waiting if wait.due_at is not None]
            if self.held.deadline_at is not None:
                dues.append(self.held.deadline_at)
            fields.update(status="waiting", run_at=min(dues).isoformat() if dues else NO_DUE_TIME)
        item = self._item(plan, results, **fields)
        new_keyed_waits = [
            (step.get("wait_event"), step.get("wait_key"))
            for step in item.get("steps", ())
            if step["status"] == "suspended"
            and step.get("wait_key") is not None
            and step.get("wait_event") != CHILD_EVENT
        ]
        if not await self._commit(item):
            return
        if dues := [wait.due_at for wait in plan.waiting if wait.due_at is not None]:
            self.engine.note_timer(min(dues).timestamp())
        if new_keyed_waits and await self.engine.waits.keyed_events_waiting(self.held.id, new_keyed_waits):
            await self.engine.store.wake_instances([self.held.id])  # an event by key came while it was stored

    async def _finish(self, plan: Plan, results: list[StepResult]) -> None:
        self._cancel_runs(list(self.tasks))
        assert plan.outcome is not None
        if plan.outcome.kind == "done":
            self.events.append({"kind": "instance_completed", "node_id": None, "data": {}})
            item = self._item(plan, results, "completed", node_types=[])
        else:
            error = plan.outcome.value
            node_id = error.get("node_id") if isinstance(error, dict) else None
            self.events.append({"kind": "instance_failed", "node_id": node_id, "data": {"error": error}})
            item = self._item(plan, results, "failed", node_types=[], error=error)
            log.warning("instance %s failed: %s", self.held.id, error.get("message") if error else error)
        if await self._commit(item) and item.get("status") == "failed":
            await self._cancel_children()

    async def _time_out(self, results: list[StepResult]) -> None:
        self._cancel_runs(list(self.tasks))
        deadline = self.held.deadline_at
        assert deadline is not None
        timeout = self.definition.timeout
        error = {
            "message": f"the instance ran past its deadline ({deadline.isoformat()}; the workflow's timeout is "
            f"{timeout:g}s)"
            if timeout
            else f"the instance ran past its deadline ({deadline.isoformat()})",
            "type": "InstanceTimeout",
            "node_id": None,
        }
        self.events.append({"kind": "instance_failed", "node_id": None, "data": {"error": error}})
        plan = Plan(state=self.view.state)
        if await self._commit(self._item(plan, results, "failed", node_types=[], error=error)):
            await self._cancel_children()

    async def _cancel_children(self) -> None:
        try:
            await self.engine.store.cancel_children(self.held.id)
        except Exception as exc:
            log.warning("instance %s: cancelling its child instances failed (%s)", self.held.id, exc)

    def _item(self, plan: Plan, results: list[StepResult], status: str, **fields: Any) -> CommitItem:
        """The write of this turn. Keys left out are read as null by the statement (see ``CommitItem``)."""
        ready = plan.ready
        first = ready[0] if ready else None
        node = first.node if first else plan.waiting[0].node if plan.waiting else None
        item: CommitItem = {
            "id": self.key,
            "lease_token": self.held.lease_token,
            "status": status,
            "node_types": [first.node.type] if len(ready) == 1 else sorted({run.node.type for run in ready}),
            "lanes": self._lanes(ready),
            "attempt": first.attempt if first else 1,
            "run_in": self.engine.lease_seconds,
            "keep_lease": status == "running",
            "signal_seq": self.signal_seq,
            "events": self.events,
        }
        if node is not None:
            item["current_node"] = node.id
            item["node_type"] = node.type
        if self.held.parent_id is not None:
            item["parent_id"] = str(self.held.parent_id)
        if self.state_dirty:
            inline, parts = changed_keys(self.stored_state, self.view.state)
            if inline is not None:
                item["state"] = inline
            if parts is not None:
                item["state_parts"] = parts
        if results:
            item["steps"] = [self._step_row(result) for result in results]
            deliveries = [
                {"signal_id": signal_id, "run_key": result.key} for result in results for signal_id in result.deliveries
            ]
            if deliveries:
                item["deliveries"] = deliveries
        if self.runs_to_record:
            item["runs"] = list(self.runs_to_record.values())
        item.update(fields)  # type: ignore[typeddict-item]
        return item

    def _running(self, to_start: list[ReadyRun]) -> list[RunningRun]:
        """The runs in flight once ``to_start`` has started: what a worker taking over would charge."""
        running: list[RunningRun] = [
            {"run": key, "node": _node_of(task), "attempt": getattr(task, "postgit_attempt", 1)}
            for key, task in self.tasks.items()
        ]
        running += [{"run": run.key, "node": run.node.id, "attempt": run.attempt} for run in to_start]
        return running

    def _charge_lost_attempts(self) -> None:
        """The lease expired under another worker: charge the attempts it was running a failure each."""
        if self.held.lost_by is None:
            return
        found, events = lost_attempts(
            self.definition,
            self.view,
            self.engine.registry,
            lost_by=self.held.lost_by,
            running=self.held.running_runs,
            now=self.engine.clock.now(),
        )
        for result in found:
            log.warning("instance %s: %s", self.held.id, (result.error or {}).get("message"))
        self.events.extend(events)
        self.finished.extend(found)
        self.pending_lost = bool(found)

    def _log_starts(self, runs: list[ReadyRun]) -> None:
        """Note that ``runs`` start now.

        A start is written with the run's result when that comes soon (one event for both), else alone after
        :data:`EVENT_FLUSH_SECONDS` (see :meth:`Executor.flush_events_forever`).
        """
        if not runs:
            return
        started_at = self.engine.clock.now().isoformat()
        workflow = self.held.workflow
        for run in runs:
            self.starts[run.key] = _started_event(run, started_at)
            if run.record is None or run.record.status != "suspended":  # a resumed attempt was counted once
                step_series(workflow, run.node.type).started += 1
        if self.starts_since is None:
            self.starts_since = time.monotonic()
            self.engine.unwritten_starts.add(self)

    def flush_starts(self) -> None:
        """Write the starts noted so far on their own (fenced by the lease, like every write)."""
        events = list(self.starts.values())
        self.starts = {}
        self.starts_since = None
        self.engine.unwritten_starts.discard(self)
        if not events:
            return
        item: CommitItem = {"id": self.key, "lease_token": self.held.lease_token, "log_only": True, "events": events}
        self.engine.committer.submit_nowait(item)

    def _step_row(self, result: StepResult) -> StepRow:
        row: StepRow = {
            "run_key": result.run.key,
            "node_id": result.run.node.id,
            "attempt": result.run.attempt,
            "status": result.status,
            "params": result.params,
            "worker_id": result.worker_id or self.engine.worker_id,
            "started_at": result.started_at.isoformat(),
        }
        if result.status == "completed":
            row["output"] = result.output
        if result.finished_at is not None:
            row["finished_at"] = result.finished_at.isoformat()
        if result.error is not None:
            row["error"] = result.error
        if result.due_at is not None:
            row["due_at"] = result.due_at.isoformat()
        if result.resume is not None:
            row["resume"] = result.resume
        if result.wait_event is not None:
            row["wait_event"] = result.wait_event
            row["wait_key"] = result.wait_key
        if result.logs is not None:
            row["logs"] = result.logs
        return row


def _node_of(task: asyncio.Task[Any]) -> str:
    return getattr(task, "postgit_node_id", "")


def _run_data(key: str, node_id: str, attempt: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {} if attempt is None else {"attempt": attempt}
    if key != node_id:
        data["run"] = key
    return data


def _run_suffix(key: str, node_id: str) -> str:
    return f" (run '{key}')" if key != node_id else ""


def _started_event(run: ReadyRun, started_at: str) -> EventRow:
    data = _run_data(run.key, run.node.id, run.attempt)
    data["started_at"] = started_at
    if run.record is not None and run.record.status == "suspended":
        data["resumed"] = True
    return {"kind": "step_started", "node_id": run.node.id, "data": data}


def _result_event(result: StepResult, start: EventRow | None, clock: Clock) -> EventRow:
    """The event of a step's result; when its start was not written yet, it carries the start too (its time)."""
    node_id = result.run.node.id
    data = _run_data(result.run.key, node_id, result.run.attempt)
    if start is not None:
        data["started_at"] = start["data"]["started_at"]
        if start["data"].get("resumed"):
            data["resumed"] = True
    if result.status == "completed":
        return {"kind": "step_completed", "node_id": node_id, "data": data}
    if result.status == "failed":
        data["error"] = result.error
        if result.due_at is not None:
            data["retry_in"] = round(max(0.0, (result.due_at - clock.now()).total_seconds()), 3)
        return {"kind": "step_failed", "node_id": node_id, "data": data}
    if result.wait_event is not None:
        data.update(event=result.wait_event, key=result.wait_key)
    if result.due_at is not None:
        data["until"] = result.due_at.isoformat()
    return {"kind": "step_suspended", "node_id": node_id, "data": data}
