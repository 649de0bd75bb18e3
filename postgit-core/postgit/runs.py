"""Runs: one execution of one node, named by its node id and its loop iteration (``ship[3]``, ``label[3][0]``).

What the engine has committed about an instance's runs is all the decider needs, together with the state:

- a leaf run's latest attempt (a row of the ``steps`` table): completed with its output, failed (for good, or to
  be retried at ``due_at``), or suspended (until ``due_at``, or until an event arrives);
- a control run's record (a row of the ``runs`` table): the decision it took (the If branch, the ForEach item
  list, the winning Parallel branch) and, for a control node that writes its output to the state, its completion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


def run_key(node_id: str, iteration: tuple[int, ...] = ()) -> str:
    """``node_id`` followed by one ``[index]`` per enclosing ForEach, outermost first."""
    if not iteration:
        return node_id
    return node_id + "".join(f"[{index}]" for index in iteration)


@dataclass(slots=True)
class LeafRecord:
    """The latest committed attempt of a leaf run.

    Attributes:
        status: ``completed``, ``failed`` or ``suspended``.
        due_at: for a failed attempt, when the next one is due (None: failed for good); for a suspended one, when
            to wake it (None: only an event wakes it).
        wait_event, wait_key: the event a suspended WaitForEvent or SubWorkflow run waits for.
    """

    key: str
    attempt: int
    status: str
    output: Any = None
    error: dict[str, Any] | None = None
    due_at: datetime | None = None
    resume: dict[str, Any] | None = None
    wait_event: str | None = None
    wait_key: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> LeafRecord:
        due_at = row.get("due_at")
        if isinstance(due_at, str):
            due_at = datetime.fromisoformat(due_at)
        return cls(
            key=row["run_key"],
            attempt=row["attempt"],
            status=row["status"],
            output=row.get("output"),
            error=row.get("error"),
            due_at=due_at,
            resume=row.get("resume"),
            wait_event=row.get("wait_event"),
            wait_key=row.get("wait_key"),
        )


@dataclass(frozen=True)
class ControlRecord:
    """What was recorded for a control run: its decision, and its output once it completed."""

    key: str
    decision: Any = None
    completed: bool = False
    output: Any = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ControlRecord:
        return cls(
            key=row["run_key"],
            decision=row.get("decision"),
            completed=row.get("status") == "completed",
            output=row.get("output"),
        )


@dataclass
class RunView:
    """An instance as committed: its state and what each run has recorded."""

    state: dict[str, Any]
    leaves: dict[str, LeafRecord] = field(default_factory=dict)
    controls: dict[str, ControlRecord] = field(default_factory=dict)

    @classmethod
    def from_rows(
        cls, state: dict[str, Any], steps: list[dict[str, Any]] | None, runs: list[dict[str, Any]] | None
    ) -> RunView:
        """From the latest attempt of each leaf run and the control runs' rows."""
        leaves = {row["run_key"]: LeafRecord.from_row(row) for row in steps or ()}
        controls = {row["run_key"]: ControlRecord.from_row(row) for row in runs or ()}
        return cls(state, leaves, controls)
