"""Helpers for the deploy-time checks of control flow: a registry with a ``Step`` node type, and issue helpers."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

import postgit
from postgit.definition import WorkflowDefinition
from postgit.errors import DefinitionError, DefinitionIssue
from postgit.plugins import load_registry
from postgit.registry import NodeRegistry
from postgit.validation import validate_definition


class StepParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: Any = None
    text: str = ""
    count: int = 1


class StepPlugin:
    @staticmethod
    @postgit.hookimpl
    def postgit_node_types():
        return [postgit.NodeType(name="Step", params=StepParams, handler=lambda ctx, params: None)]


def step_registry() -> NodeRegistry:
    return load_registry(extra=[StepPlugin])


def step(node_id: str, **extra: Any) -> dict[str, Any]:
    """A leaf of type ``Step`` in raw JSON, with no params unless ``params=`` is given."""
    return {"id": node_id, "type": "Step", "params": {}, **extra}


def as_json(definition: Any) -> Any:
    """Raw JSON as is; an SDK node or Workflow as its JSON form."""
    return definition.to_json() if hasattr(definition, "to_json") else definition


def accept(definition: Any, registry: NodeRegistry) -> WorkflowDefinition:
    return validate_definition(as_json(definition), registry)


def issues_of(definition: Any, registry: NodeRegistry) -> list[DefinitionIssue]:
    with pytest.raises(DefinitionError) as caught:
        validate_definition(as_json(definition), registry)
    issues = caught.value.issues
    assert issues
    for issue in issues:
        assert issue.node_id is None or isinstance(issue.node_id, str)
        assert issue.field is None or isinstance(issue.field, str)
        assert isinstance(issue.message, str) and issue.message
    return issues


def only_issue(definition: Any, registry: NodeRegistry) -> DefinitionIssue:
    issues = issues_of(definition, registry)
    assert len(issues) == 1, issues
    return issues[0]


def located(definition: Any, registry: NodeRegistry) -> set[tuple[str | None, str | None]]:
    """The (node id, field) of every issue."""
    return {(issue.node_id, issue.field) for issue in issues_of(definition, registry)}
