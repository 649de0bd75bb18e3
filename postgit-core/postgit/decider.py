"""The decider: given a definition, what an instance has committed and the time, what happens next.

It is a pure function of its inputs (no I/O, no clock of its own): :meth:`Decider.decide` walks the node tree
against a :class:`~postgit.runs.RunView` and returns a :class:`Plan`: the leaf runs that should be running now,
the runs that wait (for a time or an event), the decisions control nodes took that are not recorded yet, and
whether the instance has completed or failed. The worker commits the decisions with its next write, so a re-run
after a crash decides the same way; the API server calls it too, to show an instance's branches.

Semantics:

- ``Sequence`` runs its children in order; its output is its last child's.
- ``Parallel`` runs its branches at once; output ``{branch: output}``. ``fail_fast`` (default): the first failed
  branch fails the node and its running siblings are cancelled; ``wait_all``: the node fails once every branch
  has finished, if any failed. ``mode="first"``: the first branch to complete wins (recorded), the others are
  cancelled, output ``{winner: output}``.
- ``If``/``Switch``: the first true condition wins and is recorded; a Switch with no match and no default fails.
- ``ForEach``: the item list is recorded when the loop starts; items run in order, at most ``concurrency`` at
  once, each with ``item`` and ``index`` in scope and a state of its own (a body node's ``assignTo`` writes to
  its item's scope, not to the instance's state); outputs are collected in item order.
- ``Try``: an error escaping ``body`` runs ``catch`` with ``error`` in scope; ``finally`` always runs.

Inside a loop item, what a node writes is derived again from the item's committed runs each time; outside any
loop it is in the committed state, and a control node that writes its output there records its completion so
that the write is applied exactly once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from postgit.definition import MAX_FOREACH_ITEMS, REF_KEY, NodeSpec, WorkflowDefinition
from postgit.paths import PathError, parse_path
from postgit.runs import LeafRecord, RunView, run_key
from postgit.templating import TemplateProblem, evaluate_expression, is_template

ACTIVE = "active"
DONE = "done"
FAILED = "failed"


@dataclass(slots=True)
class Status:
    """How a node's run stands: ``active``, ``done`` (with its output) or ``failed`` (with its error)."""

    kind: str
    value: Any = None


_ACTIVE = Status(ACTIVE)


class Scope:
    """Variables visible to the nodes below a loop item or a catch, on top of the instance's state.

    A ForEach item is a scope of its own: ``item``, ``index`` and whatever its nodes write. A catch adds
    ``error``; what its nodes write goes to the enclosing item, or to the state outside any loop.
    """

    __slots__ = ("iteration", "own", "parent", "writes_here")

    def __init__(
        self,
        parent: Scope | None = None,
        iteration: tuple[int, ...] = (),
        own: dict[str, Any] | None = None,
        writes_here: bool = False,
    ):
        self.parent = parent
        self.iteration = iteration
        self.own: dict[str, Any] = own or {}
        self.writes_here = writes_here

    @property
    def in_loop(self) -> bool:
        return bool(self.iteration)

    def variables(self, state: dict[str, Any]) -> dict[str, Any]:
        """The state's top-level keys overlaid with every enclosing scope's variables."""
        if self.parent is None and not self.own:
            return state
        chain: list[Scope] = []
        scope: Scope | None = self
        while scope is not None:
            chain.append(scope)
            scope = scope.parent
        if all(not s.own for s in chain):
            return state
        merged = dict(state)
        for s in reversed(chain):
            merged.update(s.own)
        return merged

    def write(self, path: str, value: Any, state: dict[str, Any]) -> None:
        """Write to the nearest enclosing item scope (only called inside a loop)."""
        target: Scope | None = self
        while target is not None and not target.writes_here:
            target = target.parent
        assert target is not None, "a write outside any loop goes to the state"
        parsed = parse_path(path)
        root = parsed.segments[0]
        visible = target.variables(state)
        document = {root: visible[root]} if root in visible else {}
        target.own[root] = parsed.write(document, value)[root]  # type: ignore[index]


@dataclass(slots=True)
class ReadyRun:
    """A leaf run that should be running now.

    Attributes:
        record: its latest committed attempt, if any (a suspended run resumes from it).
        attempt: the attempt number it runs as.
    """

    key: str
    node: NodeSpec
    scope: Scope
    attempt: int
    record: LeafRecord | None = None


@dataclass(slots=True)
class WaitingRun:
    """A leaf run that waits: until ``due_at`` (a timer or a retry), or for an event (``event``, ``event_key``)."""

    key: str
    node: NodeSpec
    due_at: datetime | None
    reason: str
    event: str | None = None
    event_key: str | None = None


@dataclass
class ForEachProgress:
    """What a decider remembers of one loop between calls: how far it got, which items run, which finished."""

    items: list[Any]
    started: int = 0
    active: list[int] = field(default_factory=list)
    outputs: dict[int, Any] = field(default_factory=dict)
    errors: dict[int, Any] = field(default_factory=dict)


class Plan:
    """What :meth:`Decider.decide` found.

    Attributes:
        ready: leaf runs that should be running now (those already running included).
        waiting: leaf runs waiting for a time or an event.
        decisions: control decisions taken now, by run key, to record with the next write.
        completions: outputs of control runs outside loops that completed now and wrote to the state.
        run_nodes: the node id of each run key in ``decisions`` and ``completions``.
        state: the state after those writes (the same object when nothing was written).
        outcome: None while the instance goes on; ``done`` or ``failed`` (with the error) when it ended.
        statuses: with ``observe``, each run's status by run key.
    """

    __slots__ = ("completions", "decisions", "outcome", "ready", "run_nodes", "state", "statuses", "waiting")

    def __init__(self, state: dict[str, Any] | None = None):
        self.ready: list[ReadyRun] = []
        self.waiting: list[WaitingRun] = []
        self.decisions: dict[str, Any] = {}
        self.completions: dict[str, Any] = {}
        self.run_nodes: dict[str, str] = {}
        self.state: dict[str, Any] = state if state is not None else {}
        self.outcome: Status | None = None
        self.statuses: dict[str, str] = {}


def node_error(node: NodeSpec, kind: str, message: str, **details: Any) -> dict[str, Any]:
    """An error raised by a control node itself (as opposed to one that escaped a step)."""
    error: dict[str, Any] = {"message": message, "type": kind, "node_id": node.id}
    if details:
        error["details"] = details
    return error


class Decider:
    """Decides for one definition; keep one per held instance so loops are not walked from the start each time.

    ``memo`` (loop progress) is derived from the committed runs alone: a fresh decider decides the same.
    """

    def __init__(self, definition: WorkflowDefinition):
        self.definition = definition
        self.memo: dict[str, ForEachProgress] = {}
        self._sequence_done: dict[str, tuple[int, Any]] = {}
        """Outside loops: how many children of a Sequence are known to be done, and the last one's output."""
        self._root_scope = Scope()
        self._plan = Plan()
        self._view = RunView({})
        self._now: datetime = datetime.min
        self._observe = False

    def decide(self, view: RunView, now: datetime, *, observe: bool = False) -> Plan:
        """Walk the tree against ``view`` at time ``now`` (timezone-aware)."""
        self._plan = Plan(state=view.state)
        self._view = view
        self._now = now
        self._observe = observe
        status = self._eval(self.definition.root, Scope() if observe else self._root_scope)
        if status.kind != ACTIVE:
            self._plan.outcome = status
        return self._plan

    # -- the walk --------------------------------------------------------------------------------------------

    def _eval(self, node: NodeSpec, scope: Scope) -> Status:
        plan = self._plan
        marks = len(plan.ready), len(plan.waiting)
        status = self._eval_control(node, scope) if node.is_control else self._eval_leaf(node, scope)
        if status.kind != ACTIVE:
            # a finished subtree runs nothing more: drop what its cancelled parts had asked for
            del plan.ready[marks[0] :]
            del plan.waiting[marks[1] :]
        if self._observe:
            plan.statuses[run_key(node.id, scope.iteration)] = status.kind
        return status

    def _eval_leaf(self, node: NodeSpec, scope: Scope) -> Status:
        key = run_key(node.id, scope.iteration)
        record = self._view.leaves.get(key)
        plan = self._plan
        if record is None:
            plan.ready.append(ReadyRun(key, node, scope, 1))
            return _ACTIVE
        if record.status == "completed":
            if scope.in_loop and node.assign_to:
                try:
                    scope.write(node.assign_to, record.output, plan.state)
                except PathError as exc:
                    return Status(FAILED, node_error(node, "FatalError", f"field 'assignTo': {exc}"))
            return Status(DONE, record.output)
        due_at = record.due_at
        if record.status == "failed":
            if due_at is None:
                return Status(FAILED, record.error)
            if due_at <= self._now:
                plan.ready.append(ReadyRun(key, node, scope, record.attempt + 1, record))
            else:
                reason = f"retries at {due_at.isoformat()} (attempt {record.attempt + 1})"
                plan.waiting.append(WaitingRun(key, node, due_at, reason))
            return _ACTIVE
        # suspended
        if due_at is not None and due_at <= self._now:
            plan.ready.append(ReadyRun(key, node, scope, record.attempt, record))
        elif record.wait_event is not None:
            reason = f"waits for event '{record.wait_event}'" + (
                f" with key '{record.wait_key}'" if record.wait_key is not None else ""
            )
            if due_at is not None:
                reason += f" until {due_at.isoformat()}"
            plan.waiting.append(WaitingRun(key, node, due_at, reason, record.wait_event, record.wait_key))
        else:
            reason = f"waits until {due_at.isoformat()}" if due_at else "waits"
            plan.waiting.append(WaitingRun(key, node, due_at, reason))
        return _ACTIVE

    def _eval_control(self, node: NodeSpec, scope: Scope) -> Status:
        key = run_key(node.id, scope.iteration)
        record = self._view.controls.get(key)
        if record is not None and record.completed:
            return Status(DONE, record.output)
        status = _CONTROL[node.type](self, node, scope, key)
        if status.kind == DONE and node.assign_to:
            if scope.in_loop:
                try:
                    scope.write(node.assign_to, status.value, self._plan.state)
                except PathError as exc:
                    return Status(FAILED, node_error(node, "FatalError", f"field 'assignTo': {exc}"))
            else:
                try:
                    self._plan.state = parse_path(node.assign_to).write(self._plan.state, status.value)
                except PathError as exc:
                    return Status(FAILED, node_error(node, "FatalError", f"field 'assignTo': {exc}"))
                self._plan.completions[key] = status.value
                self._plan.run_nodes[key] = node.id
        return status

    def _decide_now(self, key: str, node: NodeSpec, decision: Any) -> Any:
        self._plan.decisions[key] = decision
        self._plan.run_nodes[key] = node.id
        return decision

    def _decision(self, key: str) -> Any:
        if key in self._plan.decisions:
            return self._plan.decisions[key]
        record = self._view.controls.get(key)
        return record.decision if record is not None else None

    def _sequence(self, node: NodeSpec, scope: Scope, key: str) -> Status:
        children = node.children
        # Outside loops a done child stays done and has already written to the state: later walks start after it.
        # (Inside a loop item each walk rebuilds the item's scope, so every child is walked again.)
        remember = not scope.iteration and not self._observe
        start, output = self._sequence_done.get(key, (0, None)) if remember else (0, None)
        for index in range(start, len(children)):
            status = self._eval(children[index], scope)
            if status.kind != DONE:
                if remember and index > start:
                    self._sequence_done[key] = (index, output)
                return status
            output = status.value
        if remember:
            self._sequence_done[key] = (len(children), output)
        return Status(DONE, output)

    def _parallel(self, node: NodeSpec, scope: Scope, key: str) -> Status:
        fail_fast = node.params.get("on_failure", "fail_fast") == "fail_fast"
        first = node.params.get("mode", "all") == "first"
        winner = (self._decision(key) or {}).get("winner") if first else None
        outputs: dict[str, Any] = {}
        failures: list[tuple[str, Any]] = []
        active = False
        for role, child in zip(node.roles, node.children, strict=True):
            if winner is not None and role != winner:
                continue
            status = self._eval(child, scope)
            if status.kind == ACTIVE:
                active = True
            elif status.kind == DONE:
                outputs[role] = status.value
                if first:
                    if winner is None:
                        self._decide_now(key, node, {"winner": role})
                    return Status(DONE, {role: status.value})
            else:
                failures.append((role, status.value))
                if fail_fast:
                    return Status(FAILED, _branch_error(node, failures))
        if active:
            return _ACTIVE
        if failures:
            return Status(FAILED, _branch_error(node, failures))
        return Status(DONE, outputs)

    def _if(self, node: NodeSpec, scope: Scope, key: str) -> Status:
        decision = self._decision(key)
        if decision is None:
            try:
                value = evaluate_expression(node.params["condition"], scope.variables(self._plan.state))
            except TemplateProblem as exc:
                return Status(FAILED, node_error(node, "ConditionError", f"field 'condition': {exc}"))
            decision = self._decide_now(key, node, {"branch": "then" if value else "else"})
        child = node.child(decision["branch"])
        return self._eval(child, scope) if child is not None else Status(DONE, None)

    def _switch(self, node: NodeSpec, scope: Scope, key: str) -> Status:
        decision = self._decision(key)
        if decision is None:
            variables = scope.variables(self._plan.state)
            chosen: int | str | None = None
            for index, condition in enumerate(node.params.get("conditions", ())):
                try:
                    matched = evaluate_expression(condition, variables)
                except TemplateProblem as exc:
                    return Status(FAILED, node_error(node, "ConditionError", f"field 'cases[{index}]': {exc}"))
                if matched:
                    chosen = index
                    break
            if chosen is None and node.child("default") is not None:
                chosen = "default"
            decision = self._decide_now(key, node, {"case": chosen})
        chosen = decision["case"]
        if chosen is None:
            message = f"no case of Switch '{node.id}' matched and it has no default"
            return Status(FAILED, node_error(node, "NoChoiceMatched", message))
        cases = [child for role, child in zip(node.roles, node.children, strict=True) if role == "case"]
        child = node.child("default") if chosen == "default" else cases[chosen]
        assert child is not None
        return self._eval(child, scope)

    def _foreach(self, node: NodeSpec, scope: Scope, key: str) -> Status:
        progress = self.memo.get(key)
        if progress is None:
            decision = self._decision(key)
            if decision is None:
                try:
                    items = resolve_items(node.params["items"], scope.variables(self._plan.state))
                except ValueError as exc:
                    return Status(FAILED, node_error(node, "ItemsError", f"field 'items': {exc}"))
                decision = self._decide_now(key, node, {"items": items})
            progress = self.memo[key] = ForEachProgress(decision["items"])
        body = node.children[0]
        total = len(progress.items)
        allowed = tolerated_failures(node.params.get("tolerated_failures"), total)
        concurrency = int(node.params.get("concurrency") or 10)

        def run_item(index: int) -> bool:
            """Evaluate one item; True while it is still active."""
            item_scope = Scope(
                scope, (*scope.iteration, index), {"item": progress.items[index], "index": index}, writes_here=True
            )
            status = self._eval(body, item_scope)
            if status.kind == DONE:
                progress.outputs[index] = status.value
            elif status.kind == FAILED:
                progress.errors[index] = status.value
            return status.kind == ACTIVE

        progress.active = [index for index in progress.active if run_item(index)]
        while len(progress.errors) <= allowed and len(progress.active) < concurrency and progress.started < total:
            index = progress.started
            progress.started += 1
            if run_item(index):
                progress.active.append(index)
        if len(progress.errors) > allowed:
            return Status(FAILED, _items_error(node, progress, total, allowed))
        if progress.active or progress.started < total:
            return _ACTIVE
        results = [progress.outputs.get(index) for index in range(total)]
        if node.params.get("tolerated_failures"):
            errors = [{"index": index, "error": progress.errors[index]} for index in sorted(progress.errors)]
            return Status(DONE, {"results": results, "errors": errors})
        return Status(DONE, results)

    def _try(self, node: NodeSpec, scope: Scope, key: str) -> Status:
        status = self._eval(node.children[0], scope)
        if status.kind == ACTIVE:
            return status
        error = status.value if status.kind == FAILED else None
        catch = node.child("catch")
        if status.kind == FAILED and catch is not None:
            status = self._eval(catch, Scope(scope, scope.iteration, {"error": error}))
            if status.kind == ACTIVE:
                return status
        finally_ = node.child("finally")
        if finally_ is not None:
            final_scope = Scope(scope, scope.iteration, {"error": error}) if error is not None else scope
            final_status = self._eval(finally_, final_scope)
            if final_status.kind != DONE:
                return final_status
        return status


_CONTROL = {
    "Sequence": Decider._sequence,
    "Parallel": Decider._parallel,
    "If": Decider._if,
    "Switch": Decider._switch,
    "ForEach": Decider._foreach,
    "Try": Decider._try,
}


def resolve_items(value: Any, variables: dict[str, Any]) -> list[Any]:
    """A ForEach's item list from its ``items`` setting: a ref, a ``{{ expression }}``, or a literal list.

    Raises:
        ValueError: the value is not a list, is longer than the limit, or cannot be resolved.
    """
    if isinstance(value, dict) and REF_KEY in value:
        try:
            items = parse_path(value[REF_KEY]).read(variables)
        except PathError as exc:
            if "default" not in value:
                raise ValueError(f"ref {exc}") from None
            items = value["default"]
    elif is_template(value):
        try:
            items = evaluate_expression(value, variables)
        except TemplateProblem as exc:
            raise ValueError(str(exc)) from None
    else:
        items = value
    if isinstance(items, tuple):
        items = list(items)
    if not isinstance(items, list):
        raise ValueError(f"must give a list, got {type(items).__name__}")
    if len(items) > MAX_FOREACH_ITEMS:
        raise ValueError(f"gives {len(items)} items; the limit is {MAX_FOREACH_ITEMS}")
    return items


def tolerated_failures(setting: int | str | None, total: int) -> int:
    """How many failed items a loop of ``total`` tolerates: a count, or a percentage such as ``"5%"``."""
    if setting is None:
        return 0
    if isinstance(setting, str):
        return math.floor(total * float(setting.rstrip("%")) / 100)
    return int(setting)


def _branch_error(node: NodeSpec, failures: list[tuple[str, Any]]) -> dict[str, Any]:
    role, first = failures[0]
    error = dict(first) if isinstance(first, dict) else {"message": str(first), "type": "Error"}
    error.setdefault("node_id", node.id)
    error["branch"] = role
    if len(failures) > 1:
        error["failed_branches"] = [name for name, _ in failures]
    return error


def _items_error(node: NodeSpec, progress: ForEachProgress, total: int, allowed: int) -> dict[str, Any]:
    index = min(progress.errors)
    first = progress.errors[index]
    message = first.get("message") if isinstance(first, dict) else str(first)
    failed = len(progress.errors)
    return node_error(
        node,
        "ItemsFailed",
        f"{failed} of {total} items failed (tolerated: {allowed}); item {index}: {message}",
        failed_items=sorted(progress.errors)[:100],
        first_error=first,
    )
