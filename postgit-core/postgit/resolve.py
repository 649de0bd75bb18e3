"""Run-time resolution of a node's params: refs read from the state, templates rendered against it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from postgit.definition import REF_KEY, NodeSpec
from postgit.outcomes import FatalError
from postgit.paths import PathError, parse_path
from postgit.templating import TemplateProblem, is_template, render_template


def resolve_params(node: NodeSpec, model: type[BaseModel], state: dict[str, Any]) -> BaseModel:
    """The node's params, resolved against ``state`` and validated by the node type's model.

    Raises:
        FatalError: a ref points nowhere, a template fails, or a resolved value has the wrong type; the message
            names the node and the field.
    """
    resolved = {key: _resolve(node.id, key, value, state) for key, value in node.params.items()}
    try:
        return model.model_validate(resolved)
    except ValidationError as exc:
        problems = "; ".join(
            f"field 'params.{'.'.join(str(p) for p in error['loc'])}': {error['msg']}" for error in exc.errors()
        )
        raise FatalError(f"node '{node.id}': resolved params are invalid: {problems}") from None


def _resolve(node_id: str, field: str, value: Any, state: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        if REF_KEY in value and len(value) == 1:
            try:
                return parse_path(value[REF_KEY]).read(state)
            except PathError as exc:
                raise FatalError(f"node '{node_id}', field 'params.{field}': ref {exc}") from None
        return {key: _resolve(node_id, f"{field}.{key}", item, state) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve(node_id, f"{field}[{i}]", item, state) for i, item in enumerate(value)]
    if is_template(value):
        try:
            return render_template(value, state)
        except TemplateProblem as exc:
            raise FatalError(f"node '{node_id}', field 'params.{field}': {exc}") from None
    return value
