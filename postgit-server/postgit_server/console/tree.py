"""A workflow definition as the tree the workflow page draws."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from postgit.definition import CONTROL_SETTINGS, control_children

SUMMARY_LIMIT = 120


@dataclass
class TreeNode:
    """One node as drawn: its id, type, role under its parent, a one-line summary, its queue, and its children."""

    id: str
    type: str
    role: str = ""
    summary: str = ""
    sub_workflow: str | None = None
    queue: str | None = None
    """A step's queue, its own or its workflow's (None: it names none, the ``default`` queue)."""
    children: list[TreeNode] = field(default_factory=list)

    @property
    def control(self) -> bool:
        """Whether it is a control-flow node (it has child nodes)."""
        return self.type in CONTROL_SETTINGS


def root_of(definition: Any) -> Any:
    """The root node of a stored definition (the node itself, or ``root`` when the workflow has settings)."""
    if isinstance(definition, dict) and "root" in definition and "type" not in definition:
        return definition["root"]
    return definition


def definition_tree(definition: Any) -> TreeNode | None:
    """The tree of a stored definition; None when it is not a node."""
    root = root_of(definition)
    queue = definition.get("queue") if root is not definition and isinstance(definition, dict) else None
    return _node(root, "", queue) if isinstance(root, dict) else None


def _node(data: dict[str, Any], role: str, queue: str | None = None) -> TreeNode:
    node_type = str(data.get("type", "?"))
    node = TreeNode(id=str(data.get("id", "?")), type=node_type, role=role, summary=_summary(node_type, data))
    if node_type not in CONTROL_SETTINGS:
        node.queue = data.get("queue") or queue
    params = data.get("params") if isinstance(data.get("params"), dict) else {}
    if node_type == "SubWorkflow" and isinstance(params.get("workflow"), str):
        node.sub_workflow = params["workflow"]
    for child_role, child in control_children(data):
        if isinstance(child, dict):
            node.children.append(_node(child, child_role, queue))
    if node_type == "Switch":  # each case's condition, in the role shown next to its node
        cases = [case for case in data.get("cases") or [] if isinstance(case, dict)]
        for case, child in zip(cases, node.children, strict=False):
            child.role = f"case {_short(case.get('condition'))}"
    return node


def _summary(node_type: str, data: dict[str, Any]) -> str:
    """The settings worth a glance: a control node's own, a leaf's params, and where it writes its output."""
    if node_type in CONTROL_SETTINGS:
        shown = {key: data[key] for key in CONTROL_SETTINGS[node_type] if key in data}
    else:
        shown = data.get("params") if isinstance(data.get("params"), dict) else {}
    parts = [f"{key}={_short(value)}" for key, value in shown.items()]
    if data.get("assignTo"):
        parts.append(f"-> {data['assignTo']}")
    text = ", ".join(parts)
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1] + "…"


def _short(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)
