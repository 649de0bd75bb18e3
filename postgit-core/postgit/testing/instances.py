"""What a test reads back: an instance as it stands, with its steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from postgit.testing.errors import PostgitTestingError


@dataclass(frozen=True)
class Step:
    """One attempt of one step, as the engine recorded it.

    Attributes:
        run_key: the node id, with ``[index]`` per enclosing ForEach (``ship[3]``).
        status: ``completed``, ``failed`` or ``suspended``.
        params: the params it ran with, refs and templates resolved (secrets shown as ``***``).
    """

    node_id: str
    run_key: str
    attempt: int
    status: str
    params: Any = None
    output: Any = None
    error: dict[str, Any] | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Step:
        return cls(
            node_id=row["node_id"],
            run_key=row["run_key"],
            attempt=row["attempt"],
            status=row["status"],
            params=row.get("params"),
            output=row.get("output"),
            error=row.get("error"),
            started_at=row.get("started_at"),
            finished_at=row.get("finished_at"),
        )


@dataclass(frozen=True)
class Instance:
    """An instance: its status, state (``state["input"]`` is its input), error, and every attempt of its steps.

    Attributes:
        status: ``pending``, ``running``, ``waiting``, ``completed``, ``failed`` or ``cancelled``.
        error: why it failed (``{"message", "type", "node_id", ...}``), or None.
        steps: every attempt of every step, in the order they started.
        children: the ids of the instances it started (SubWorkflow).
    """

    id: str
    workflow: str
    version: int
    status: str
    state: dict[str, Any]
    error: dict[str, Any] | None = None
    wait_reason: str | None = None
    steps: list[Step] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    created_at: datetime | None = None
    finished_at: datetime | None = None

    @classmethod
    def from_rows(cls, row: dict[str, Any], steps: list[dict[str, Any]], children: list[dict[str, Any]]) -> Instance:
        return cls(
            id=str(row["id"]),
            workflow=row["workflow"],
            version=row["version"],
            status=row["status"],
            state=row["state"],
            error=row.get("error"),
            wait_reason=row.get("wait_reason"),
            steps=[Step.from_row(step) for step in steps],
            children=[str(child["id"]) for child in children],
            created_at=row.get("created_at"),
            finished_at=row.get("finished_at"),
        )

    def attempts(self, run_key: str) -> list[Step]:
        """Every attempt of the run ``run_key`` (a node id, or ``node[index]`` inside a ForEach), oldest first."""
        return sorted((step for step in self.steps if step.run_key == run_key), key=lambda step: step.attempt)

    def step(self, run_key: str) -> Step:
        """The latest attempt of the run ``run_key``; PostgitTestingError naming the runs there are when it has none."""
        attempts = self.attempts(run_key)
        if not attempts:
            known = ", ".join(sorted({step.run_key for step in self.steps})) or "none"
            raise PostgitTestingError(f"instance {self.id} has no step '{run_key}' (its steps: {known})")
        return attempts[-1]

    def output(self, run_key: str) -> Any:
        """The output of the run ``run_key``'s latest attempt (None unless it completed)."""
        return self.step(run_key).output
