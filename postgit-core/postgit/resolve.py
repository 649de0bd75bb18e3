"""Run-time resolution of a node's params, and redaction of the secrets they used.

Refs are read from the state, templates rendered against it, secrets read from the worker's environment; what
is stored afterwards has every form of every secret's value replaced by ``***`` (:mod:`postgit.redaction`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from postgit.definition import REF_DEFAULT_KEY, REF_KEY, SECRET_KEY, NodeSpec
from postgit.outcomes import FatalError
from postgit.paths import PathError, parse_path
from postgit.redaction import redact
from postgit.settings import SECRET_PREFIX, secret_value
from postgit.templating import TemplateProblem, is_template, render_template


def resolve_params(
    node: NodeSpec, model: type[BaseModel], state: dict[str, Any], secrets: list[str] | None = None
) -> BaseModel:
    """The node's params, resolved against ``state`` and validated by the node type's model.

    The value of every secret used is appended to ``secrets``, for :func:`redact`.

    Raises:
        FatalError: a ref points nowhere, a template fails, or a resolved value has the wrong type; the message
            names the node and the field.
    """
    found = secrets if secrets is not None else []
    resolved = {key: _resolve(node.id, key, value, state, found) for key, value in node.params.items()}
    try:
        return model.model_validate(resolved)
    except ValidationError as exc:
        problems = "; ".join(
            f"field 'params.{'.'.join(str(p) for p in error['loc'])}': {error['msg']}" for error in exc.errors()
        )
        raise FatalError(f"node '{node.id}': resolved params are invalid: {redact(problems, found)}") from None
    except Exception as exc:  # a params model whose validator raised something other than ValueError
        problem = redact(f"{type(exc).__name__}: {exc}", found)
        raise FatalError(f"node '{node.id}': resolved params are invalid: {problem}") from None


def _resolve(node_id: str, field: str, value: Any, state: dict[str, Any], secrets: list[str]) -> Any:
    if isinstance(value, dict):
        if SECRET_KEY in value and len(value) == 1:
            found = secret_value(value[SECRET_KEY])
            if found is None:
                raise FatalError(
                    f"node '{node_id}', field 'params.{field}': secret '{value[SECRET_KEY]}' is not set on this "
                    f"worker (environment variable {SECRET_PREFIX}{value[SECRET_KEY]})"
                )
            secrets.append(found)
            return found
        if REF_KEY in value and set(value) <= {REF_KEY, REF_DEFAULT_KEY}:
            try:
                return parse_path(value[REF_KEY]).read(state)
            except PathError as exc:
                if REF_DEFAULT_KEY in value:
                    return value[REF_DEFAULT_KEY]
                raise FatalError(f"node '{node_id}', field 'params.{field}': ref {exc}") from None
        return {key: _resolve(node_id, f"{field}.{key}", item, state, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve(node_id, f"{field}[{i}]", item, state, secrets) for i, item in enumerate(value)]
    if is_template(value):
        try:
            return render_template(value, state)
        except TemplateProblem as exc:
            raise FatalError(f"node '{node_id}', field 'params.{field}': {exc}") from None
    return value
