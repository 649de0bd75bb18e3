"""Charging the attempts a dead worker was running: a step that kills its worker counts as a failed attempt.

A worker writes, with the group commit that comes before a run starts, which runs it is running
(``instances.running_runs``); a run started right after the claim, before any write, is recorded by the claim
itself (the claimer runs what is ready). When a lease expires and another worker claims the instance, each of
those runs whose attempt has no outcome is charged: a failed attempt, retried by the node's retry policy, and
the instance fails once no attempt is left. An instance that was waiting for a timer or an event, or that was
handed back, is held by no one, so nothing is charged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from postgit.db.records import EventRow, RunningRun
from postgit.decider import Decider, ReadyRun, Scope
from postgit.definition import WorkflowDefinition
from postgit.engine.steps import StepResult, failed
from postgit.outcomes import RetryableError
from postgit.registry import NodeRegistry
from postgit.retry import RetryPolicy
from postgit.runs import RunView

WORKER_LOST = "worker_lost"


def lost_attempts(
    definition: WorkflowDefinition,
    view: RunView,
    registry: NodeRegistry,
    *,
    lost_by: str,
    running: list[RunningRun] | None,
    now: datetime,
) -> tuple[list[StepResult], list[EventRow]]:
    """The failed attempts to charge for the runs ``lost_by`` was running when its lease expired, and their events.

    ``running``: what the lost holder wrote it was running; None when it wrote nothing since its claim (then it
    was running what was ready).
    """
    if running is None:
        plan = Decider(definition).decide(view, now)
        running = [{"run": run.key, "node": run.node.id, "attempt": run.attempt} for run in plan.ready]
    results: list[StepResult] = []
    events: list[EventRow] = []
    for entry in running:
        node = definition.nodes.get(entry["node"])
        if node is None or node.is_control or node.is_engine_leaf:
            continue
        key, attempt = entry["run"], entry["attempt"]
        record = view.leaves.get(key)
        unanswered = (record is None and attempt == 1) or (
            record is not None
            and record.status == "failed"
            and record.due_at is not None
            and record.attempt == attempt - 1
        )
        if not unanswered:
            continue  # it has an outcome, or it was a wait resumed (a resumed wait is not charged)
        run = ReadyRun(key, node, Scope(), attempt, record)
        failure = RetryableError(
            f"the worker died while running node '{node.id}'" + (f" (run '{key}')" if key != node.id else ""),
            details={"worker": lost_by},
        )
        delay = _policy(node.retry, node.type, registry).next_delay(attempt)
        results.append(failed(run, now, failure, retry_delay=delay, now=now, worker_id=lost_by))
        data: dict[str, Any] = {"attempt": attempt, "worker": lost_by, "retried": delay is not None}
        if key != node.id:
            data["run"] = key
        events.append({"kind": WORKER_LOST, "node_id": node.id, "data": data})
    return results, events


def _policy(own: RetryPolicy | None, node_type: str, registry: NodeRegistry) -> RetryPolicy:
    if own is not None:
        return own
    try:
        return registry.node_type(node_type).retry
    except KeyError:
        return RetryPolicy()
