"""How far an instance has come, for people: its active branches and its tree of runs.

Computed with the decider over what the instance has committed, exactly as a worker would see it, so what the
API shows is what the engine will do: which leaf runs are running or ready, which wait (for a time, an event,
a child, a worker with a node type or serving a queue), and per node how it stands, with loop progress counted
rather than listed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from postgit.decider import ACTIVE, DONE, Decider, Plan
from postgit.definition import NodeSpec, WorkflowDefinition
from postgit.runs import RunView, run_key

FINISHED = frozenset({"completed", "failed", "cancelled"})


def progress(
    definition: WorkflowDefinition,
    instance: dict[str, Any],
    latest: list[dict[str, Any]],
    runs: list[dict[str, Any]],
    live_workers: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``{"branches": [...], "tree": {...}}`` for an instance row, its latest attempts and its control runs.

    ``live_workers``: the live workers (their ``node_types`` and ``queues``), to say which ready runs no worker can
    take.
    """
    view = RunView.from_rows(instance["state"], latest, runs)
    decider = Decider(definition)
    plan = decider.decide(view, datetime.now(UTC), observe=True)
    finished = instance["status"] in FINISHED
    branches = [] if finished else _branches(definition, plan, instance["status"], live_workers)
    tree = _tree(definition.root, (), plan, decider, finished, {b["run_key"]: b for b in branches})
    return {"branches": branches, "tree": tree}


def _branches(
    definition: WorkflowDefinition, plan: Plan, status: str, live_workers: list[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    out = []
    for run in plan.ready:
        state = "running" if status == "running" else "ready"
        reason = None if live_workers is None else _no_worker(definition, run.node, live_workers)
        if reason is not None:
            state = "blocked"
        out.append(_branch(run.key, run.node, state, run.attempt, reason, None))
    for wait in plan.waiting:
        record_due = wait.due_at.isoformat() if wait.due_at else None
        branch = _branch(wait.key, wait.node, "waiting", None, wait.reason, record_due)
        if wait.event is not None:
            branch["event"] = wait.event
            branch["event_key"] = wait.event_key
        out.append(branch)
    return out


def _no_worker(definition: WorkflowDefinition, node: NodeSpec, workers: list[dict[str, Any]]) -> str | None:
    """Why no live worker can take a ready run of ``node``, or None when one can."""
    able = [worker for worker in workers if node.is_engine_leaf or node.type in worker["node_types"]]
    if not able:
        return None if node.is_engine_leaf else f"no live worker has node type '{node.type}'"
    queue = definition.queue_of(node)
    if any(worker.get("queues") is None or queue in worker["queues"] for worker in able):
        return None
    return f"no live worker serves queue '{queue}'" + ("" if node.is_engine_leaf else f" with node type '{node.type}'")


def _branch(
    key: str, node: NodeSpec, status: str, attempt: int | None, reason: str | None, due_at: str | None
) -> dict[str, Any]:
    return {
        "run_key": key,
        "node_id": node.id,
        "node_type": node.type,
        "status": status,
        "attempt": attempt,
        "waiting_for": reason,
        "due_at": due_at,
    }


def _tree(
    node: NodeSpec,
    iteration: tuple[int, ...],
    plan: Plan,
    decider: Decider,
    finished: bool,
    branches: dict[str, dict[str, Any]],
    role: str | None = None,
) -> dict[str, Any]:
    key = run_key(node.id, iteration)
    seen = plan.statuses.get(key)
    if seen is None:
        status = "skipped" if finished else "pending"
    elif seen == DONE:
        status = "completed"
    elif seen == ACTIVE:
        branch = branches.get(key)
        status = branch["status"] if branch else ("cancelled" if finished else "running")
    else:
        status = "failed"
    out: dict[str, Any] = {"node_id": node.id, "type": node.type, "run_key": key, "status": status}
    if role:
        out["role"] = role
    if node.type == "ForEach":
        out["items"] = _items(decider, key, status)
        # the body is shown once, as a shape: its runs are counted in "items" rather than listed
        out["children"] = [_shape(node.children[0], "body")]
        return out
    out["children"] = [
        _tree(child, iteration, plan, decider, finished, branches, child_role or None)
        for child, child_role in zip(node.children, node.roles, strict=True)
    ]
    return out


def _items(decider: Decider, key: str, status: str) -> dict[str, Any]:
    progress = decider.memo.get(key)
    if progress is None:
        return {"total": None, "completed": 0, "failed": 0, "running": 0, "pending": None}
    total = len(progress.items)
    return {
        "total": total,
        "completed": len(progress.outputs),
        "failed": len(progress.errors),
        "running": len(progress.active) if status not in FINISHED | {"skipped"} else 0,
        "pending": total - progress.started,
        "running_items": progress.active[:20],
    }


def _shape(node: NodeSpec, role: str | None) -> dict[str, Any]:
    return {
        "node_id": node.id,
        "type": node.type,
        "role": role,
        "children": [
            _shape(child, child_role or None) for child, child_role in zip(node.children, node.roles, strict=True)
        ],
    }
