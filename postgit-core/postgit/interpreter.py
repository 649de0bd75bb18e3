"""Control flow: given a definition and the nodes already done, which node runs next.

``Sequence`` is the only control-flow node today: its children run in order. The interpreter works from the set
of completed leaf node ids (and the state, for the conditional nodes to come), so ``Parallel``, ``If`` and
``ForEach`` fit in here without changing the engine's storage.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from postgit.definition import NodeSpec, WorkflowDefinition


def next_node(definition: WorkflowDefinition, done: Collection[str], state: dict[str, Any]) -> NodeSpec | None:
    """The next leaf node to execute, or None when the workflow has finished."""
    return _next_in(definition.root, done, state)


def _next_in(node: NodeSpec, done: Collection[str], state: dict[str, Any]) -> NodeSpec | None:
    if not node.is_control:
        return None if node.id in done else node
    if node.type == "Sequence":
        for child in node.children:
            found = _next_in(child, done, state)
            if found is not None:
                return found
        return None
    raise ValueError(f"node '{node.id}': the engine cannot interpret control-flow type '{node.type}'")
