"""Replay: would a new definition act as the recorded one did, over an instance's recorded runs?

:func:`replay` drives the decider of the new definition over what an instance of the current version recorded: the
latest attempt of each leaf run (its outcome is taken as recorded, not run again) and each control run's decision.
It stops at the first point where the new definition would act differently:

- a control node decides otherwise (an If branch, a Switch case, a ForEach item list, a Parallel winner), or its
  condition or item list now fails;
- a node would run that was not recorded, while recorded runs are still to come (a new node before a recorded one);
- a recorded run's node is of another type now;
- a ref or template of a recorded run's params no longer resolves against the state at that point;
- the instance would end before recorded runs.

A new node after the last recorded one (an extension) is no divergence. Like the decider, it is pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from postgit.decider import Decider, Plan, ReadyRun
from postgit.definition import REF_DEFAULT_KEY, REF_KEY, SECRET_KEY, WorkflowDefinition
from postgit.paths import PathError, parse_path
from postgit.runs import ControlRecord, LeafRecord, RunView
from postgit.templating import TemplateProblem, is_template, render_template

LATER_THAN_ANY_TIMER = datetime(9999, 12, 31, tzinfo=UTC)
"""The time the replay decides at: every recorded timer has fired by then."""


@dataclass(frozen=True)
class Divergence:
    """Where a new definition would first act differently: the node, its run (``ship[3]``) and how."""

    node_id: str
    run: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"node_id": self.node_id, "run": self.run, "reason": self.reason}


@dataclass(frozen=True)
class Recording:
    """What an instance recorded: its input, its leaf runs' latest attempts, and its control runs' decisions."""

    input: Any
    leaves: Mapping[str, LeafRecord]
    node_types: Mapping[str, str]
    """The recorded node type of each node id (from the definition the instance ran)."""
    order: list[str]
    """Leaf run keys in the order they first started."""
    controls: Mapping[str, ControlRecord]


def replay(definition: WorkflowDefinition, recording: Recording) -> Divergence | None:
    """The first divergence of ``definition`` from ``recording``, or None when it would act the same."""
    decider = Decider(definition)
    view = RunView({"input": recording.input})
    applied: set[str] = set()
    while True:
        plan = decider.decide(view, LATER_THAN_ANY_TIMER)
        divergence = _record_decisions(plan, view, recording)
        if divergence is not None:
            return divergence
        if plan.outcome is not None:
            return _ended_early(plan, recording, applied)
        # a run waiting for an event is taken as recorded, its params as they were when it began to wait
        runs = [*plan.ready, *(ReadyRun(wait.key, wait.node, None, 1) for wait in plan.waiting)]  # type: ignore[arg-type]
        progressed = False
        for run in runs:
            if run.key in applied or run.key not in recording.leaves:
                continue
            divergence = _apply(run, view, recording)
            if divergence is not None:
                return divergence
            applied.add(run.key)
            progressed = True
        if progressed:
            continue
        remaining = [key for key in recording.order if key not in applied]
        new = [run for run in runs if run.key not in recording.leaves]
        if new and remaining:
            run = new[0]
            return Divergence(
                run.node.id,
                run.key,
                f"runs '{run.key}' ({run.node.type}), which was not recorded, before recorded '{remaining[0]}'",
            )
        return None


def _record_decisions(plan: Plan, view: RunView, recording: Recording) -> Divergence | None:
    for key, decision in plan.decisions.items():
        recorded = recording.controls.get(key)
        if recorded is not None and recorded.decision is not None and recorded.decision != decision:
            node_id = plan.run_nodes[key]
            return Divergence(
                node_id, key, f"decides {_describe(decision)}; the recorded run decided {_describe(recorded.decision)}"
            )
        view.controls[key] = ControlRecord(key, decision=decision)
    for key, output in plan.completions.items():
        previous = view.controls.get(key)
        view.controls[key] = ControlRecord(key, previous.decision if previous else None, True, output)
    view.state = plan.state
    return None


def _ended_early(plan: Plan, recording: Recording, applied: set[str]) -> Divergence | None:
    remaining = [key for key in recording.order if key not in applied]
    if not remaining:
        return None
    assert plan.outcome is not None
    error = plan.outcome.value if plan.outcome.kind == "failed" else None
    if isinstance(error, dict) and error.get("node_id"):
        node_id = str(error["node_id"])
        return Divergence(
            node_id, node_id, f"fails: {error.get('message')} (recorded runs went on to '{remaining[0]}')"
        )
    how = "completes" if plan.outcome.kind == "done" else "fails"
    return Divergence(remaining[0], remaining[0], f"the instance {how} before the recorded run '{remaining[0]}'")


def _apply(run: ReadyRun, view: RunView, recording: Recording) -> Divergence | None:
    """Take the recorded outcome of ``run`` into ``view``; a Divergence when the new node cannot have produced it."""
    node = run.node
    recorded_type = recording.node_types.get(node.id)
    if recorded_type is not None and recorded_type != node.type:
        return Divergence(node.id, run.key, f"is a {node.type} now; the recorded run was a {recorded_type}")
    record = recording.leaves[run.key]
    if run.scope is not None:
        problem = _unresolved(node.params, run.scope.variables(view.state), "params")
        if problem is not None:
            return Divergence(node.id, run.key, f"its params no longer resolve: {problem}")
    view.leaves[run.key] = record
    in_loop = run.scope is not None and run.scope.in_loop
    if record.status == "completed" and node.assign_to and not in_loop:
        try:
            view.state = parse_path(node.assign_to).write(view.state, record.output)
        except PathError as exc:
            return Divergence(node.id, run.key, f"field 'assignTo': {exc}")
    return None


def _unresolved(value: Any, variables: dict[str, Any], field: str) -> str | None:
    """Why a ref or template in ``value`` does not resolve against ``variables`` (secrets are not read), or None."""
    if isinstance(value, dict):
        if SECRET_KEY in value and len(value) == 1:
            return None
        if REF_KEY in value and set(value) <= {REF_KEY, REF_DEFAULT_KEY}:
            if REF_DEFAULT_KEY in value:
                return None
            try:
                parse_path(value[REF_KEY]).read(variables)
            except PathError as exc:
                return f"field '{field}': ref {exc}"
            return None
        found = (_unresolved(item, variables, f"{field}.{key}") for key, item in value.items())
        return next((problem for problem in found if problem is not None), None)
    if isinstance(value, list):
        found = (_unresolved(item, variables, f"{field}[{i}]") for i, item in enumerate(value))
        return next((problem for problem in found if problem is not None), None)
    if is_template(value):
        try:
            render_template(value, variables)
        except TemplateProblem as exc:
            return f"field '{field}': {exc}"
    return None


def _describe(decision: Any) -> str:
    if isinstance(decision, dict):
        if "branch" in decision:
            return f"branch '{decision['branch']}'"
        if "case" in decision:
            case = decision["case"]
            return "no case" if case is None else "the default" if case == "default" else f"case {case}"
        if "winner" in decision:
            return f"winner '{decision['winner']}'"
        if "items" in decision:
            count = len(decision["items"])
            return f"{count} item" if count == 1 else f"{count} items"
    return repr(decision)
