"""Deploy-time checks of a definition against the installed node types.

Every problem is collected as a :class:`DefinitionIssue` naming the node id and field; nothing is stored unless
the list is empty.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from typing import Any

import jsonschema
import referencing
import referencing.exceptions
import referencing.jsonschema
from jsonschema_specifications import REGISTRY as METASCHEMAS
from pydantic import AliasChoices, AliasPath, BaseModel, RootModel, ValidationError
from pydantic.fields import FieldInfo

from postgit.dataflow import check_data_flow
from postgit.definition import (
    CONCURRENCY_STRATEGIES,
    CONTROL_TYPES,
    ENGINE_TYPES,
    MAX_FOREACH_ITEMS,
    QUEUE_NAME,
    QUEUE_NAME_RULE,
    REF_DEFAULT_KEY,
    REF_KEY,
    SECRET_KEY,
    SECRET_NAME,
    WORKFLOW_KEYS,
    WorkflowDefinition,
    control_children,
    is_wrapped,
)
from postgit.engine_types import ENGINE_PARAMS
from postgit.errors import DefinitionError, DefinitionIssue
from postgit.paths import PathError, parse_path
from postgit.registry import NodeRegistry
from postgit.retry import RetryPolicy
from postgit.templating import TemplateProblem, check_expression, check_template, is_template, template_variables

MAX_NODES = 5_000
MAX_DEPTH = 50
MAX_DEFINITION_BYTES = 1_000_000
MAX_ID_LENGTH = 200
MAX_JSON_DEPTH = 4 * MAX_DEPTH
"""How deeply any JSON value in a definition may nest: node levels take two each (node, children list)."""

_COMMON_KEYS = frozenset({"id", "type", "assignTo"})
_LEAF_KEYS = _COMMON_KEYS | {"params", "retry", "timeout", "rateLimit", "queue"}
_CONTROL_KEYS = {
    "Sequence": {"children"},
    "Parallel": {"branches", "onFailure", "mode"},
    "If": {"condition", "then", "else"},
    "Switch": {"cases", "default"},
    "ForEach": {"items", "body", "concurrency", "toleratedFailures"},
    "Try": {"body", "catch", "finally"},
}
MAX_CONCURRENCY = 10_000
MAX_CONCURRENCY_KEY_LENGTH = 1_000
MAX_RATE_PER_SECOND = 100_000
MAX_WORKFLOW_TIMEOUT = 366 * 86_400
MAX_RETENTION = 100 * 366 * 86_400
_BRANCH_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
_PERCENT = re.compile(r"^(\d{1,3}(\.\d+)?)%$")


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
    try:
        size = len(json.dumps(raw, default=str))
    except (TypeError, ValueError) as exc:  # keys that JSON has no form for, e.g. a tuple
        raise DefinitionError([DefinitionIssue(None, None, f"a definition must be JSON: {exc}")]) from None
    if size > MAX_DEFINITION_BYTES:
        raise DefinitionError(
            [DefinitionIssue(None, None, f"definition is {size} bytes; the limit is {MAX_DEFINITION_BYTES}")]
        )
    root = raw
    if is_wrapped(raw):
        _check_workflow_settings(raw, issues)
        root = raw["root"]
        if not isinstance(root, dict):
            raise DefinitionError([DefinitionIssue(None, "root", "must be the root node, a JSON object")])
    checker = _Checker(registry, issues)
    checker.check_node(root, depth=1, parent=None)
    if checker.count > MAX_NODES:
        issues.append(DefinitionIssue(None, None, f"definition has {checker.count} nodes; the limit is {MAX_NODES}"))
    if issues:
        raise DefinitionError(issues)
    definition = WorkflowDefinition.from_json(raw)
    issues.extend(check_data_flow(definition))
    if issues:
        raise DefinitionError(issues)
    return definition


def _check_workflow_settings(raw: dict[str, Any], issues: list[DefinitionIssue]) -> None:
    for key in raw.keys() - WORKFLOW_KEYS:
        issues.append(
            DefinitionIssue(None, str(key)[:100], f"unknown key; a workflow has {', '.join(sorted(WORKFLOW_KEYS))}")
        )
    timeout = raw.get("timeout")
    if timeout is not None and not _is_number_in(timeout, 0, MAX_WORKFLOW_TIMEOUT):
        issues.append(
            DefinitionIssue(None, "timeout", f"must be a number of seconds between 0 and {MAX_WORKFLOW_TIMEOUT}")
        )
    retention = raw.get("retention")
    if retention is not None and not _is_number_in(retention, 0, MAX_RETENTION):
        issues.append(
            DefinitionIssue(None, "retention", f"must be a number of seconds above 0 and at most {MAX_RETENTION}")
        )
    queue = raw.get("queue")
    if queue is not None and (problem := queue_problem(queue)) is not None:
        issues.append(DefinitionIssue(None, "queue", problem))
    schema = raw.get("inputSchema")
    if schema is not None:
        problem = _input_schema_problem(schema)
        if problem is not None:
            issues.append(DefinitionIssue(None, *problem))
    concurrency = raw.get("concurrency")
    if concurrency is not None:
        issues.extend(DefinitionIssue(None, field, message) for field, message in concurrency_problems(concurrency))


def rate_limit_problems(rate_limit: Any) -> list[tuple[str, str]]:
    """(field, message) of each thing wrong with a node's ``rateLimit``."""
    if not isinstance(rate_limit, dict):
        return [("rateLimit", 'must be an object such as {"key": "{{ input.customer }}", "perSecond": 5}')]
    problems = [
        (f"rateLimit.{str(key)[:100]}", "unknown key; rateLimit has key, perSecond")
        for key in rate_limit.keys() - {"key", "perSecond"}
    ]
    key = rate_limit.get("key")
    if not isinstance(key, str) or not 0 < len(key) <= MAX_CONCURRENCY_KEY_LENGTH:
        problems.append(("rateLimit.key", f"must be a template of 1 to {MAX_CONCURRENCY_KEY_LENGTH} characters"))
    else:
        try:
            check_template(key)
        except TemplateProblem as exc:
            problems.append(("rateLimit.key", str(exc)))
    if not _is_number_in(rate_limit.get("perSecond"), 0, MAX_RATE_PER_SECOND):
        problems.append(("rateLimit.perSecond", f"must be a number above 0 and at most {MAX_RATE_PER_SECOND}"))
    return problems


def concurrency_problems(concurrency: Any) -> list[tuple[str, str]]:
    """(field, message) of each thing wrong with a workflow's ``concurrency`` setting."""
    if not isinstance(concurrency, dict):
        return [("concurrency", 'must be an object such as {"key": "{{ input.customer }}", "limit": 1}')]
    problems = [
        (f"concurrency.{str(key)[:100]}", "unknown key; concurrency has key, limit, strategy")
        for key in concurrency.keys() - {"key", "limit", "strategy"}
    ]
    key = concurrency.get("key")
    if not isinstance(key, str) or not 0 < len(key) <= MAX_CONCURRENCY_KEY_LENGTH:
        problems.append(("concurrency.key", f"must be a template of 1 to {MAX_CONCURRENCY_KEY_LENGTH} characters"))
    else:
        try:
            check_template(key)
            required, optional = template_variables(key) if is_template(key) else (set(), set())
        except TemplateProblem as exc:
            problems.append(("concurrency.key", str(exc)))
        else:
            if (required | optional) - {"input"}:
                names = ", ".join(sorted((required | optional) - {"input"}))
                problems.append(("concurrency.key", f"may read only the start's input (it reads {names})"))
    limit = concurrency.get("limit", 1)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_CONCURRENCY:
        problems.append(("concurrency.limit", f"must be a whole number from 1 to {MAX_CONCURRENCY}"))
    strategy = concurrency.get("strategy", "queue")
    if strategy not in CONCURRENCY_STRATEGIES:
        problems.append(("concurrency.strategy", f"must be one of {', '.join(CONCURRENCY_STRATEGIES)}"))
    return problems


def _input_schema_problem(schema: Any) -> tuple[str, str] | None:
    """(field, message) of what makes ``schema`` unusable as an input schema, or None."""
    if not isinstance(schema, dict | bool):
        return "inputSchema", "must be a JSON Schema (an object)"
    if isinstance(schema, dict) and "$schema" in schema:
        known = isinstance(schema["$schema"], str) and jsonschema.validators.validator_for(schema, default=None)
        if not known:
            return (
                "inputSchema.$schema",
                "must name a JSON Schema draft, such as 'https://json-schema.org/draft/2020-12/schema'",
            )
    validator = jsonschema.validators.validator_for(schema)
    try:
        validator.check_schema(schema)
        ref = _unresolvable_ref(schema, validator)
    except jsonschema.SchemaError as exc:
        return "inputSchema", f"is not a valid JSON Schema: {exc.message}"
    except RecursionError:
        return "inputSchema", "is not a valid JSON Schema: it nests too deeply"
    if ref is not None:
        return "inputSchema", f"is not a valid JSON Schema: '{ref[:100]}' points to nothing inside it"
    return None


def _unresolvable_ref(schema: dict[str, Any] | bool, validator: Any) -> str | None:
    """The first ``$ref`` or ``$dynamicRef`` in ``schema`` that does not resolve, or None.

    Only the schema itself and the drafts' metaschemas are looked in: a remote ``$ref`` would fail (or be
    fetched from the network) at every start, so it is refused here.
    """
    specification = referencing.jsonschema.specification_with(
        validator.ID_OF(validator.META_SCHEMA), default=referencing.Specification.OPAQUE
    )
    root = specification.create_resource(schema)
    stack = [(root, METASCHEMAS.resolver_with_root(root))]
    while stack:
        resource, resolver = stack.pop()
        contents = resource.contents
        for key in ("$ref", "$dynamicRef"):
            ref = contents.get(key) if isinstance(contents, dict) else None
            if isinstance(ref, str):
                try:
                    resolver.lookup(ref)
                except referencing.exceptions.Unresolvable:
                    return ref
        stack.extend((sub, resolver.in_subresource(sub)) for sub in resource.subresources())
    return None


def queue_problem(queue: Any) -> str | None:
    """Why ``queue`` cannot name a queue, or None when it can."""
    if not isinstance(queue, str) or not QUEUE_NAME.fullmatch(queue):
        return f"invalid queue name {str(queue)[:140]!r}: use {QUEUE_NAME_RULE}"
    return None


def _is_number_in(value: Any, low: float, high: float) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and low < value <= high


class _Checker:
    def __init__(self, registry: NodeRegistry, issues: list[DefinitionIssue]):
        self.registry = registry
        self.issues = issues
        self.seen_ids: set[str] = set()
        self.count = 0

    def add(self, node_id: str | None, field: str | None, message: str) -> None:
        self.issues.append(DefinitionIssue(node_id, field, message))

    def check_node(self, raw: Any, depth: int, parent: str | None, field: str = "children") -> None:
        self.count += 1
        where = f"a child of '{parent}'" if parent else "the root"
        if not isinstance(raw, dict):
            self.add(parent, field, f"{where} must be a JSON object, got {type(raw).__name__}")
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
        node_type = raw.get("type")
        control = isinstance(node_type, str) and node_type in CONTROL_TYPES
        allowed = _COMMON_KEYS | _CONTROL_KEYS[node_type] if control else _LEAF_KEYS
        for key in raw.keys() - allowed:
            if control and key == "params":
                self.add(node_id, "params", f"{node_type} takes no params, only {_describe_keys(node_type)}")
            elif control and key in ("retry", "timeout", "queue"):
                where = " (or on the workflow, for all its steps)" if key == "queue" else ""
                self.add(node_id, key, f"{node_type} is a control-flow node: set {key} on the steps inside it{where}")
            elif not control and key == "children":
                self.add(node_id, "children", f"{node_type} is not a control-flow node and has no children")
            else:
                self.add(
                    node_id,
                    str(key)[:100],
                    f"unknown key; a {node_type if control else 'node'} has {', '.join(sorted(allowed))}",
                )
        if not isinstance(node_type, str):
            self.add(node_id, "type", "missing node type (a string such as 'HitEndpoint')")
            return
        self.check_common(node_id, raw, control)
        if control:
            self.check_control(node_id, node_type, raw, depth)
        elif node_type in self.registry or node_type in ENGINE_PARAMS:
            self.check_params(node_id, node_type, raw)
        else:
            installed = ", ".join(sorted(set(self.registry) | CONTROL_TYPES | ENGINE_TYPES))
            self.add(node_id, "type", f"unknown node type '{node_type[:100]}'; installed: {installed}")

    def check_common(self, node_id: str | None, raw: dict[str, Any], control: bool) -> None:
        queue = raw.get("queue")
        if not control and queue is not None and (problem := queue_problem(queue)) is not None:
            self.add(node_id, "queue", problem)
        assign_to = raw.get("assignTo")
        if assign_to is not None:
            try:
                if not parse_path(assign_to).segments:
                    raise PathError("cannot assign to the whole state '$'; name a key, e.g. '$.result'")
            except PathError as exc:
                self.add(node_id, "assignTo", str(exc))
        if control:
            return
        if raw.get("type") in ENGINE_TYPES:
            for key in ("retry", "timeout", "rateLimit"):
                if raw.get(key) is not None:
                    hint = " (a WaitForEvent's own timeout is params.timeout)" if key == "timeout" else ""
                    self.add(node_id, key, f"{raw['type']} is run by the engine and takes no {key}{hint}")
            return
        retry = raw.get("retry")
        if retry is not None:
            try:
                RetryPolicy.model_validate(retry)
            except ValidationError as exc:
                self.add(node_id, "retry", _pydantic_message(exc))
        timeout = raw.get("timeout")
        if timeout is not None and not _is_number_in(timeout, 0, 86_400):
            self.add(node_id, "timeout", "must be a number of seconds between 0 and 86400")
        rate_limit = raw.get("rateLimit")
        if rate_limit is not None:
            for field, message in rate_limit_problems(rate_limit):
                self.add(node_id, field, message)

    def check_control(self, node_id: str | None, node_type: str, raw: dict[str, Any], depth: int) -> None:
        getattr(self, f"check_{node_type.lower()}")(node_id, raw)
        for role, child in control_children(raw):
            self.check_node(child, depth + 1, node_id, _child_field(node_type, role, raw))

    def check_sequence(self, node_id: str | None, raw: dict[str, Any]) -> None:
        children = raw.get("children")
        if not isinstance(children, list) or not children:
            self.add(node_id, "children", "must be a non-empty list of nodes")

    def check_parallel(self, node_id: str | None, raw: dict[str, Any]) -> None:
        branches = raw.get("branches")
        if not isinstance(branches, dict) or not branches:
            self.add(node_id, "branches", "must be a non-empty object of branch name -> node")
        else:
            for name in branches:
                if not isinstance(name, str) or not _BRANCH_NAME.fullmatch(name):
                    self.add(
                        node_id, f"branches.{str(name)[:100]}", "a branch name is 1-100 letters, digits, '_', '.', '-'"
                    )
        self.check_choice(node_id, raw, "onFailure", ("fail_fast", "wait_all"))
        self.check_choice(node_id, raw, "mode", ("all", "first"))

    def check_if(self, node_id: str | None, raw: dict[str, Any]) -> None:
        self.check_condition(node_id, "condition", raw.get("condition"))
        if raw.get("then") is None:
            self.add(node_id, "then", "an If needs a 'then' node")

    def check_switch(self, node_id: str | None, raw: dict[str, Any]) -> None:
        cases = raw.get("cases")
        if not isinstance(cases, list) or not cases:
            self.add(node_id, "cases", 'must be a non-empty list of {"condition": ..., "node": ...}')
            return
        for index, case in enumerate(cases):
            if not isinstance(case, dict) or set(case) != {"condition", "node"}:
                self.add(node_id, f"cases[{index}]", 'must be {"condition": "<expression>", "node": <node>}')
                continue
            self.check_condition(node_id, f"cases[{index}].condition", case["condition"])

    def check_foreach(self, node_id: str | None, raw: dict[str, Any]) -> None:
        items = raw.get("items")
        if isinstance(items, dict) and REF_KEY in items:
            self.check_dynamic(node_id, "items", items, prefix="")
        elif is_template(items):
            try:
                check_expression(items)
            except TemplateProblem as exc:
                self.add(
                    node_id, "items", f"{exc}; write a ref, a list, or one expression such as '{{{{ input.lines }}}}'"
                )
        elif not isinstance(items, list):
            self.add(node_id, "items", "must be a ref, an expression such as '{{ input.lines }}', or a list")
        elif len(items) > MAX_FOREACH_ITEMS:
            self.add(node_id, "items", f"has {len(items)} items; the limit is {MAX_FOREACH_ITEMS}")
        if raw.get("body") is None:
            self.add(node_id, "body", "a ForEach needs a 'body' node")
        concurrency = raw.get("concurrency")
        if concurrency is not None and (
            isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency <= MAX_CONCURRENCY
        ):
            self.add(node_id, "concurrency", f"must be a whole number from 1 to {MAX_CONCURRENCY}")
        tolerated = raw.get("toleratedFailures")
        if tolerated is not None and not _valid_tolerance(tolerated):
            self.add(node_id, "toleratedFailures", "must be a count (0 or more) or a percentage such as '5%'")

    def check_try(self, node_id: str | None, raw: dict[str, Any]) -> None:
        if raw.get("body") is None:
            self.add(node_id, "body", "a Try needs a 'body' node")
        if raw.get("catch") is None and raw.get("finally") is None:
            self.add(node_id, "catch", "a Try needs a 'catch' node, a 'finally' node, or both")

    def check_choice(self, node_id: str | None, raw: dict[str, Any], key: str, choices: tuple[str, ...]) -> None:
        # a null is refused too: the engine reads a present null as a value, not as the default
        if key in raw and raw[key] not in choices:
            self.add(node_id, key, f"must be one of {', '.join(repr(choice) for choice in choices)}")

    def check_condition(self, node_id: str | None, field: str, condition: Any) -> None:
        if not isinstance(condition, str) or not condition.strip():
            self.add(node_id, field, "must be an expression such as 'input.amount > 100'")
            return
        try:
            check_expression(condition)
        except TemplateProblem as exc:
            self.add(node_id, field, str(exc))

    def check_params(self, node_id: str | None, node_type: str, raw: dict[str, Any]) -> None:
        params = raw.get("params", {})
        if not isinstance(params, dict):
            self.add(node_id, "params", "must be a JSON object")
            return
        dynamic = {key for key, value in params.items() if self.check_dynamic(node_id, key, value)}
        if node_type in ENGINE_PARAMS:
            for key in sorted(key for key in dynamic if _holds_secret(params[key])):
                # a wait's key and a child's input are stored as they are: a secret's value would be with them
                self.add(node_id, f"params.{key}", f"a secret cannot be used in a {node_type}'s params")
        model = ENGINE_PARAMS.get(node_type) or self.registry.node_type(node_type).params
        declared = declared_params(model)
        if declared is not None:
            for key in sorted(params.keys() - declared, key=str):
                self.add(node_id, f"params.{str(key)[:100]}", _unknown_param(node_type, str(key), declared))
        try:
            model.model_validate(params)
        except ValidationError as exc:
            for error in exc.errors():
                field = ".".join(str(part) for part in error["loc"]) or None
                if error["loc"] and error["loc"][0] in dynamic:
                    continue  # its value is only known when the step runs; checked then
                if declared is not None and error["type"] == "extra_forbidden" and len(error["loc"]) == 1:
                    continue  # reported above, the same way whatever the model's config
                self.add(node_id, f"params.{field}" if field else "params", error["msg"])
        except Exception as exc:  # a plugin's validator that raised something other than ValueError
            if not dynamic:
                self.add(node_id, "params", f"{type(exc).__name__}: {exc}")

    def check_dynamic(self, node_id: str | None, field: str, value: Any, prefix: str = "params.") -> bool:
        """Check refs and templates inside a param; True if the param holds any."""
        if isinstance(value, Mapping):
            if SECRET_KEY in value:
                name = value[SECRET_KEY]
                if len(value) != 1 or not isinstance(name, str) or not SECRET_NAME.fullmatch(name):
                    self.add(
                        node_id,
                        f"{prefix}{field}",
                        f'a secret is {{"{SECRET_KEY}": "NAME"}} with NAME in capitals, digits and \'_\'',
                    )
                return True
            if REF_KEY in value:
                if not set(value) <= {REF_KEY, REF_DEFAULT_KEY}:
                    self.add(
                        node_id,
                        f"{prefix}{field}",
                        f'a ref is {{"{REF_KEY}": "$.path"}} with an optional "{REF_DEFAULT_KEY}", and nothing else',
                    )
                else:
                    try:
                        parse_path(value[REF_KEY])
                    except PathError as exc:
                        self.add(node_id, f"{prefix}{field}", str(exc))
                return True
            return any([self.check_dynamic(node_id, f"{field}.{key}", item, prefix) for key, item in value.items()])
        if isinstance(value, list):
            return any([self.check_dynamic(node_id, f"{field}[{i}]", item, prefix) for i, item in enumerate(value)])
        if is_template(value):
            try:
                check_template(value)
            except TemplateProblem as exc:
                self.add(node_id, f"{prefix}{field}", str(exc))
            return True
        return False


def declared_params(model: type[BaseModel]) -> frozenset[str] | None:
    """The keys a params model takes at its top level, by name or alias as its config allows.

    None for a model that has no named fields (a ``RootModel``): it decides for itself what it takes.
    """
    if issubclass(model, RootModel):
        return None
    config = model.model_config
    by_name = bool(config.get("populate_by_name") or config.get("validate_by_name"))
    by_alias = config.get("validate_by_alias", True) is not False
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        aliases = _aliases(field)
        if by_alias:
            keys |= aliases
        if not aliases or by_name or not by_alias:
            keys.add(name)
    return frozenset(keys)


def _aliases(field: FieldInfo) -> set[str]:
    """The top-level keys a field may be given under instead of its name."""
    alias = field.validation_alias if field.validation_alias is not None else field.alias
    choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
    keys: set[str] = set()
    for choice in choices:
        if isinstance(choice, AliasPath):
            choice = choice.path[0] if choice.path else None
        if isinstance(choice, str):
            keys.add(choice)
    return keys


def _unknown_param(node_type: str, key: str, declared: frozenset[str]) -> str:
    message = f"Extra inputs are not permitted: {node_type} has no param {key[:100]!r}"
    close = difflib.get_close_matches(key, sorted(declared), n=1)
    if close:
        message += f"; did you mean {close[0]!r}?"
    takes = ", ".join(sorted(declared)) if declared else "no params"
    return f"{message} ({node_type} takes {takes})"


def _holds_secret(value: Any) -> bool:
    if isinstance(value, Mapping):
        return SECRET_KEY in value or any(_holds_secret(item) for item in value.values())
    if isinstance(value, list):
        return any(_holds_secret(item) for item in value)
    return False


def _child_field(node_type: str, role: str, raw: dict[str, Any]) -> str:
    """The field of a control node that holds the child with ``role``, for error messages."""
    if node_type == "Sequence":
        return "children"
    if node_type == "Parallel":
        return f"branches.{role}"
    if node_type == "Switch" and role == "case":
        return "cases"
    return role


def _valid_tolerance(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 0
    if isinstance(value, str):
        match = _PERCENT.fullmatch(value)
        return match is not None and float(match.group(1)) <= 100
    return False


def _describe_keys(node_type: str) -> str:
    return ", ".join(f"'{key}'" for key in sorted(_CONTROL_KEYS[node_type]))


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
