"""Deploy-time checks of a definition against the installed node types.

Every problem is collected as a :class:`DefinitionIssue` naming the node id and field; nothing is stored unless
the list is empty.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from postgit.definition import CONTROL_TYPES, REF_KEY, SECRET_KEY, SECRET_NAME, WorkflowDefinition
from postgit.errors import DefinitionError, DefinitionIssue
from postgit.paths import PathError, parse_path
from postgit.registry import NodeRegistry
from postgit.retry import RetryPolicy
from postgit.templating import TemplateProblem, check_template, is_template

MAX_NODES = 5_000
MAX_DEPTH = 50
MAX_DEFINITION_BYTES = 1_000_000
MAX_ID_LENGTH = 200
MAX_JSON_DEPTH = 4 * MAX_DEPTH
"""How deeply any JSON value in a definition may nest: node levels take two each (node, children list)."""

_NODE_KEYS = frozenset({"id", "type", "params", "assignTo", "retry", "timeout", "children"})


def validate_definition(raw: Any, registry: NodeRegistry) -> WorkflowDefinition:
    """Check ``raw`` (a definition's JSON form) and return it parsed.

    Raises:
        DefinitionError: listing every problem found, each with its node id and field.
    """
    issues: list[DefinitionIssue] = []
    if not isinstance(raw, dict):
        raise DefinitionError([DefinitionIssue(None, None, "a definition must be a JSON object (the root node)")])
    if _nests_deeper_than(raw, MAX_JSON_DEPTH):
        raise DefinitionError([DefinitionIssue(None, None, f"definition nests deeper than {MAX_JSON_DEPTH} levels")])
    size = len(json.dumps(raw, default=str))
    if size > MAX_DEFINITION_BYTES:
        raise DefinitionError(
            [DefinitionIssue(None, None, f"definition is {size} bytes; the limit is {MAX_DEFINITION_BYTES}")]
        )
    checker = _Checker(registry, issues)
    checker.check_node(raw, depth=1, parent=None)
    if checker.count > MAX_NODES:
        issues.append(DefinitionIssue(None, None, f"definition has {checker.count} nodes; the limit is {MAX_NODES}"))
    if issues:
        raise DefinitionError(issues)
    return WorkflowDefinition.from_json(raw)


class _Checker:
    def __init__(self, registry: NodeRegistry, issues: list[DefinitionIssue]):
        self.registry = registry
        self.issues = issues
        self.seen_ids: set[str] = set()
        self.count = 0

    def add(self, node_id: str | None, field: str | None, message: str) -> None:
        self.issues.append(DefinitionIssue(node_id, field, message))

    def check_node(self, raw: Any, depth: int, parent: str | None) -> None:
        self.count += 1
        where = f"a child of '{parent}'" if parent else "the root"
        if not isinstance(raw, dict):
            self.add(parent, "children", f"{where} must be a JSON object, got {type(raw).__name__}")
            return
        node_id = raw.get("id")
        if not isinstance(node_id, str) or not node_id.strip():
            self.add(parent, "id", f"{where} has no 'id' (a non-empty string)")
            node_id = None
        elif len(node_id) > MAX_ID_LENGTH or not node_id.isprintable():
            self.add(node_id[:MAX_ID_LENGTH], "id", f"ids must be printable and at most {MAX_ID_LENGTH} characters")
        elif node_id in self.seen_ids:
            self.add(node_id, "id", "duplicate node id: ids must be unique within a workflow")
        else:
            self.seen_ids.add(node_id)
        if depth > MAX_DEPTH:
            self.add(node_id, None, f"nesting is deeper than {MAX_DEPTH} levels")
            return
        for key in raw.keys() - _NODE_KEYS:
            self.add(node_id, str(key)[:100], f"unknown key; a node has {', '.join(sorted(_NODE_KEYS))}")
        node_type = raw.get("type")
        if not isinstance(node_type, str):
            self.add(node_id, "type", "missing node type (a string such as 'HitEndpoint')")
            return
        self.check_common(node_id, raw)
        if node_type in CONTROL_TYPES:
            self.check_control(node_id, raw, depth)
        elif node_type in self.registry:
            self.check_params(node_id, node_type, raw)
        else:
            installed = ", ".join(sorted(set(self.registry) | CONTROL_TYPES))
            self.add(node_id, "type", f"unknown node type '{node_type[:100]}'; installed: {installed}")

    def check_common(self, node_id: str | None, raw: dict[str, Any]) -> None:
        assign_to = raw.get("assignTo")
        if assign_to is not None:
            try:
                if not parse_path(assign_to).segments:
                    raise PathError("cannot assign to the whole state '$'; name a key, e.g. '$.result'")
            except PathError as exc:
                self.add(node_id, "assignTo", str(exc))
        retry = raw.get("retry")
        if retry is not None:
            try:
                RetryPolicy.model_validate(retry)
            except ValidationError as exc:
                self.add(node_id, "retry", _pydantic_message(exc))
        timeout = raw.get("timeout")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 86_400
        ):
            self.add(node_id, "timeout", "must be a number of seconds between 0 and 86400")

    def check_control(self, node_id: str | None, raw: dict[str, Any], depth: int) -> None:
        if raw.get("params"):
            self.add(node_id, "params", f"{raw['type']} takes no params, only children")
        children = raw.get("children")
        if not isinstance(children, list) or not children:
            self.add(node_id, "children", "must be a non-empty list of nodes")
            return
        for child in children:
            self.check_node(child, depth + 1, node_id)

    def check_params(self, node_id: str | None, node_type: str, raw: dict[str, Any]) -> None:
        if "children" in raw:
            self.add(node_id, "children", f"{node_type} is not a control-flow node and has no children")
        params = raw.get("params", {})
        if not isinstance(params, dict):
            self.add(node_id, "params", "must be a JSON object")
            return
        dynamic = {key for key, value in params.items() if self.check_dynamic(node_id, key, value)}
        model = self.registry.node_type(node_type).params
        try:
            model.model_validate(params)
        except ValidationError as exc:
            for error in exc.errors():
                field = ".".join(str(part) for part in error["loc"]) or None
                if error["loc"] and error["loc"][0] in dynamic:
                    continue  # its value is only known when the step runs; checked then
                self.add(node_id, f"params.{field}" if field else "params", error["msg"])

    def check_dynamic(self, node_id: str | None, field: str, value: Any) -> bool:
        """Check refs and templates inside a param; True if the param holds any."""
        if isinstance(value, Mapping):
            if SECRET_KEY in value:
                name = value[SECRET_KEY]
                if len(value) != 1 or not isinstance(name, str) or not SECRET_NAME.match(name):
                    self.add(
                        node_id,
                        f"params.{field}",
                        f'a secret is {{"{SECRET_KEY}": "NAME"}} with NAME in capitals, digits and \'_\'',
                    )
                return True
            if REF_KEY in value:
                if len(value) != 1:
                    self.add(node_id, f"params.{field}", f'a ref is {{"{REF_KEY}": "$.path"}} and nothing else')
                else:
                    try:
                        parse_path(value[REF_KEY])
                    except PathError as exc:
                        self.add(node_id, f"params.{field}", str(exc))
                return True
            return any([self.check_dynamic(node_id, f"{field}.{key}", item) for key, item in value.items()])
        if isinstance(value, list):
            return any([self.check_dynamic(node_id, f"{field}[{i}]", item) for i, item in enumerate(value)])
        if is_template(value):
            try:
                check_template(value)
            except TemplateProblem as exc:
                self.add(node_id, f"params.{field}", str(exc))
            return True
        return False


def _nests_deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests deeper than ``limit``; iterative, so no input can exhaust the stack."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list | tuple):
            stack.extend((child, depth + 1) for child in item)
    return False


def _pydantic_message(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" if error["loc"] else error["msg"]
        for error in exc.errors()
    )
