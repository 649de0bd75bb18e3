"""Check a new definition of a workflow against what instances of its current version recorded.

For each of the latest finished instances of the deployed version, :func:`postgit.replay.replay` runs the new
definition's decider over the instance's recorded runs and reports the first node where it would act differently:
a gate to run before a deploy (``pst wf check FILE NAME``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from postgit.definition import WorkflowDefinition
from postgit.errors import InvalidInput
from postgit.replay import Recording, replay
from postgit.runs import ControlRecord, LeafRecord
from postgit.service import WorkflowService, check_workflow_name
from postgit.validation import validate_definition

DEFAULT_INSTANCES = 20
MAX_INSTANCES = 1_000


@dataclass(frozen=True)
class CheckedInstance:
    """One instance checked: None for ``divergence`` when the new definition would act as it did."""

    id: str
    status: str
    divergence: dict[str, str] | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "diverged": self.divergence is not None,
            **(self.divergence or {"node_id": None, "run": None, "reason": None}),
        }


async def check_definition(
    service: WorkflowService, name: str, definition: Any, instances: int = DEFAULT_INSTANCES
) -> dict[str, Any]:
    """Replay ``definition`` over the latest ``instances`` finished instances of ``name``'s latest version.

    Returns ``{"workflow", "version", "checked", "diverged", "instances": [...]}``.

    Raises:
        DefinitionError: ``definition`` is invalid (as a deploy would say).
        NotFound: ``name`` is not deployed.
        InvalidInput: ``instances`` is not between 1 and :data:`MAX_INSTANCES`.
    """
    check_workflow_name(name)
    if not 1 <= instances <= MAX_INSTANCES:
        raise InvalidInput(f"instances must be between 1 and {MAX_INSTANCES}, not {instances}")
    new = validate_definition(definition, service.registry)
    current = await service.get_workflow(name)
    recorded = WorkflowDefinition.from_json(current["definition"])
    node_types = {node.id: node.type for node in recorded.root.walk()}
    rows = await service.store.latest_finished_instances(name, current["version"], instances)
    checked = []
    for row in rows:
        recording = await _recording(service, row, node_types)
        divergence = replay(new, recording)
        checked.append(CheckedInstance(str(row["id"]), row["status"], divergence.as_dict() if divergence else None))
    return {
        "workflow": name,
        "version": current["version"],
        "checked": len(checked),
        "diverged": sum(1 for item in checked if item.divergence is not None),
        "instances": [item.as_dict() for item in checked],
    }


async def _recording(service: WorkflowService, row: dict[str, Any], node_types: dict[str, str]) -> Recording:
    steps = await service.store.recorded_runs(row["id"])
    runs = await service.store.list_runs(row["id"])
    steps.sort(key=lambda step: (step["first_started_at"], step["run_key"]))
    state = row["state"] if isinstance(row["state"], dict) else {}
    return Recording(
        input=state.get("input"),
        leaves={step["run_key"]: LeafRecord.from_row(step) for step in steps},
        node_types=node_types,
        order=[step["run_key"] for step in steps],
        controls={run["run_key"]: ControlRecord.from_row(run) for run in runs},
    )
