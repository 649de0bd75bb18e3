"""Workflow definitions: the node tree, its JSON form, and loading it from a ``.py`` or ``.json`` file.

The JSON form of a node is::

    {"id": "fetch", "type": "HitEndpoint", "params": {"url": "..."}, "assignTo": "$.result",
     "retry": {"maxAttempts": 5}, "timeout": 30, "rateLimit": {"key": "{{ input.customer }}", "perSecond": 5}}

and a control-flow node has its child nodes instead of ``params``: ``Sequence`` ``children`` (a list),
``Parallel`` ``branches`` (an object by branch name), ``If`` ``then``/``else``, ``Switch`` ``cases`` (a list of
``{"condition", "node"}``) and ``default``, ``ForEach`` ``body``, ``Try`` ``body``/``catch``/``finally``. A
definition is its root node, or ``{"root": <node>, "timeout": <seconds>, "inputSchema": <JSON Schema>,
"retention": <seconds>, "concurrency": {"key": <template>, "limit": <n>, "strategy": <strategy>}}`` when the
workflow has settings of its own.
A param value ``{"$ref": "$.a.b"}`` is read from the instance's state when the step runs, and
``{"$secret": "NAME"}`` from the worker's ``POSTGIT_SECRET_NAME`` environment variable (never stored).
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from postgit.errors import DefinitionError, DefinitionIssue
from postgit.retry import RetryPolicy

CONTROL_TYPES = frozenset({"Sequence", "Parallel", "If", "Switch", "ForEach", "Try"})
"""Node types interpreted by the engine itself rather than provided by a plugin; they have child nodes."""

ENGINE_TYPES = frozenset({"WaitForEvent", "SubWorkflow"})
"""Leaf node types every worker runs itself (they wait for events and other instances, not for a service)."""

ANY_WORKER = "postgit.any"
"""A claim type every worker has: for an instance whose next move needs only the engine (a decision, a timeout)."""

DEFAULT_QUEUE = "default"
"""The queue of a leaf node that names none (and whose workflow names none)."""
ANY_QUEUE = "*"
"""The queue every worker serves: for an instance whose next move needs only the engine (never a queue's name)."""
QUEUE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
QUEUE_NAME = re.compile(QUEUE_PATTERN)
QUEUE_NAME_RULE = "1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"


def lane(queue: str, node_type: str) -> str:
    """What a worker must serve to run a run: its queue and its node type, ``gpu:HitEndpoint`` (no queue has a ':')."""
    return f"{queue}:{node_type}"


REF_KEY = "$ref"
REF_DEFAULT_KEY = "default"
SECRET_KEY = "$secret"  # noqa: S105 - a JSON key, not a password
SECRET_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,99}$")
"""A secret's name: the worker reads its value from ``POSTGIT_SECRET_<NAME>``."""

CONTROL_SETTINGS: dict[str, dict[str, str]] = {
    "Sequence": {},
    "Parallel": {"onFailure": "on_failure", "mode": "mode"},
    "If": {"condition": "condition"},
    "Switch": {},
    "ForEach": {"items": "items", "concurrency": "concurrency", "toleratedFailures": "tolerated_failures"},
    "Try": {},
}
"""Per control type: its JSON keys other than child nodes, and the name each has in ``NodeSpec.params``."""

DEFAULT_CONCURRENCY = 10
MAX_FOREACH_ITEMS = 100_000


@dataclass(frozen=True)
class NodeSpec:
    """One node of a definition, as stored and interpreted.

    A leaf node has ``params`` (its node type's) and no children. A control node keeps its settings in ``params``
    (``condition``, ``items``, ``concurrency``, ``on_failure``, ...) and its child nodes in ``children``, each
    with its role in ``roles``: a branch name (Parallel), ``then``/``else`` (If), ``case``/``default`` (Switch,
    whose case conditions are ``params["conditions"]`` in order), ``body`` (ForEach), ``body``/``catch``/
    ``finally`` (Try), or ``""`` (Sequence).
    """

    id: str
    type: str
    params: dict[str, Any] = field(default_factory=dict)
    assign_to: str | None = None
    retry: RetryPolicy | None = None
    timeout: float | None = None
    children: tuple[NodeSpec, ...] = ()
    roles: tuple[str, ...] = ()
    rate_limit: dict[str, Any] | None = None
    """A leaf's ``{"key": <template>, "perSecond": <rate>}``: its steps start at most that often per rendered key,
    across every worker."""
    queue: str | None = None
    """The queue of a leaf node: only workers that serve it run the node (None: the workflow's queue)."""

    @property
    def is_control(self) -> bool:
        return self.type in CONTROL_TYPES

    @property
    def is_engine_leaf(self) -> bool:
        return self.type in ENGINE_TYPES

    def child(self, role: str) -> NodeSpec | None:
        """The child with ``role`` (the first, for Switch's ``case``), or None."""
        for child, child_role in zip(self.children, self.roles, strict=True):
            if child_role == role:
                return child
        return None

    def walk(self) -> Iterator[NodeSpec]:
        """This node and every node below it, depth first, in order."""
        yield self
        for child in self.children:
            yield from child.walk()

    def to_json(self) -> dict[str, Any]:
        """The JSON form (see the module docstring); ``NodeSpec.from_json`` reads it back unchanged."""
        out: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.is_control:
            out.update(self._control_json())
        else:
            out["params"] = self.params
        if self.assign_to is not None:
            out["assignTo"] = self.assign_to
        if self.retry is not None:
            out["retry"] = self.retry.to_json()
        if self.timeout is not None:
            out["timeout"] = self.timeout
        if self.rate_limit is not None:
            out["rateLimit"] = self.rate_limit
        if self.queue is not None:
            out["queue"] = self.queue
        return out

    def _control_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, name in CONTROL_SETTINGS[self.type].items():
            if name in self.params:
                out[key] = self.params[name]
        pairs = list(zip(self.roles, self.children, strict=True))
        if self.type == "Sequence":
            out["children"] = [child.to_json() for child in self.children]
        elif self.type == "Parallel":
            out["branches"] = {role: child.to_json() for role, child in pairs}
        elif self.type == "Switch":
            conditions = iter(self.params.get("conditions", ()))
            out["cases"] = [
                {"condition": next(conditions), "node": child.to_json()} for role, child in pairs if role == "case"
            ]
            default = self.child("default")
            if default is not None:
                out["default"] = default.to_json()
        else:  # If, ForEach, Try: one key per role
            for role, child in pairs:
                out[role] = child.to_json()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeSpec:
        """Build from already validated JSON (use :func:`postgit.validation.validate_definition` for input)."""
        node_type = data["type"]
        params: dict[str, Any] = data.get("params") or {}
        children: list[NodeSpec] = []
        roles: list[str] = []
        if node_type in CONTROL_TYPES:
            params = {name: data[key] for key, name in CONTROL_SETTINGS[node_type].items() if key in data}
            for role, child in control_children(data):
                roles.append(role)
                children.append(cls.from_json(child))
            if node_type == "Switch":
                params["conditions"] = [case["condition"] for case in data.get("cases") or ()]
        return cls(
            id=data["id"],
            type=node_type,
            params=params,
            assign_to=data.get("assignTo"),
            retry=RetryPolicy.model_validate(data["retry"]) if data.get("retry") is not None else None,
            timeout=data.get("timeout"),
            children=tuple(children),
            roles=tuple(roles),
            rate_limit=data.get("rateLimit"),
            queue=data.get("queue"),
        )


def control_children(data: dict[str, Any]) -> list[tuple[str, Any]]:
    """The (role, child JSON) pairs of a control node's JSON form, in order; nothing for other nodes."""
    node_type = data.get("type")
    if node_type == "Sequence":
        return [("", child) for child in _as_list(data.get("children"))]
    if node_type == "Parallel":
        branches = data.get("branches")
        return list(branches.items()) if isinstance(branches, dict) else []
    if node_type == "Switch":
        pairs = [("case", case.get("node")) for case in _as_list(data.get("cases")) if isinstance(case, dict)]
        return pairs + ([("default", data["default"])] if data.get("default") is not None else [])
    roles = {"If": ("then", "else"), "ForEach": ("body",), "Try": ("body", "catch", "finally")}.get(str(node_type), ())
    return [(role, data[role]) for role in roles if data.get(role) is not None]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


CONCURRENCY_STRATEGIES = ("queue", "cancel_newest", "cancel_in_progress")
"""What a start does when its concurrency key's slots are all held: wait for one in start order, be cancelled at
once, or cancel the oldest holder and take its slot."""


@dataclass(frozen=True)
class Concurrency:
    """A workflow's concurrency key: at most ``limit`` instances per rendered ``key`` hold a slot (run) at once.

    ``key`` is a template rendered over the start's input (``"{{ input.customer }}"``); a slot is held from the
    start (or from when it is granted) until the instance finishes, across sleeps and waits for events.
    """

    key: str
    limit: int = 1
    strategy: str = "queue"

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "limit": self.limit, "strategy": self.strategy}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Concurrency:
        return cls(data["key"], data.get("limit", 1), data.get("strategy", "queue"))


@dataclass(frozen=True)
class WorkflowDefinition:
    """A validated definition: the root node, the workflow's own settings, and every node by id.

    Attributes:
        root: the root node.
        timeout: seconds an instance may run from its start; past it, the instance fails.
        input_schema: a JSON Schema the input of every start must satisfy.
        retention: seconds a finished instance is kept, instead of the workers' ``POSTGIT_RETENTION``.
        concurrency: how many instances per key may hold a slot at once (see :class:`Concurrency`).
        queue: the queue of the leaf nodes that name none (None: ``default``).
    """

    root: NodeSpec
    timeout: float | None = None
    input_schema: dict[str, Any] | None = None
    retention: float | None = None
    concurrency: Concurrency | None = None
    queue: str | None = None
    nodes: dict[str, NodeSpec] = field(init=False, repr=False, compare=False)
    parents: dict[str, str] = field(init=False, repr=False, compare=False)
    in_loop: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", {node.id: node for node in self.root.walk()})
        parents = {child.id: node.id for node in self.root.walk() for child in node.children}
        object.__setattr__(self, "parents", parents)
        in_loop = {
            below.id
            for node in self.root.walk()
            if node.type == "ForEach"
            for below in node.walk()
            if below is not node
        }
        object.__setattr__(self, "in_loop", frozenset(in_loop))

    def to_json(self) -> dict[str, Any]:
        """The bare root node, or ``{"root": ..., "timeout": ..., ...}`` when settings are given."""
        if (
            self.timeout is None
            and self.input_schema is None
            and self.retention is None
            and not self.concurrency
            and self.queue is None
        ):
            return self.root.to_json()
        concurrency = self.concurrency.to_json() if self.concurrency is not None else None
        return wrap_root(
            self.root.to_json(),
            self.timeout,
            self.input_schema,
            self.retention,
            concurrency=concurrency,
            queue=self.queue,
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkflowDefinition:
        if is_wrapped(data):
            concurrency = data.get("concurrency")
            return cls(
                NodeSpec.from_json(data["root"]),
                data.get("timeout"),
                data.get("inputSchema"),
                data.get("retention"),
                Concurrency.from_json(concurrency) if concurrency is not None else None,
                data.get("queue"),
            )
        return cls(NodeSpec.from_json(data))

    def queue_of(self, node: NodeSpec) -> str:
        """The queue whose workers run ``node``: its own, else the workflow's, else ``default``."""
        return node.queue or self.queue or DEFAULT_QUEUE

    def node_types(self) -> set[str]:
        """The plugin node types this definition uses."""
        return {node.type for node in self.root.walk() if not node.is_control and not node.is_engine_leaf}


WORKFLOW_KEYS = frozenset({"root", "timeout", "inputSchema", "retention", "concurrency", "queue"})


def wrap_root(
    root: dict[str, Any],
    timeout: float | None = None,
    input_schema: dict[str, Any] | None = None,
    retention: float | None = None,
    concurrency: dict[str, Any] | None = None,
    queue: str | None = None,
) -> dict[str, Any]:
    """The ``{"root": ..., ...}`` form of a definition, with the settings that are given."""
    settings = {
        "timeout": timeout,
        "inputSchema": input_schema,
        "retention": retention,
        "concurrency": concurrency,
        "queue": queue,
    }
    return {"root": root, **{key: value for key, value in settings.items() if value is not None}}


def is_wrapped(data: Any) -> bool:
    """Whether a definition's JSON is the ``{"root": ..., ...}`` form rather than a bare root node."""
    return isinstance(data, dict) and "root" in data and "type" not in data


def load_definition_file(path: str | FsPath) -> dict[str, Any]:
    """Read a workflow file: a ``.json`` definition, or a ``.py`` module whose ``workflow()`` returns a node.

    Returns the definition's JSON form, not yet validated against installed node types.

    Raises:
        DefinitionError: the file is missing, does not parse or import, or has no ``workflow()``.
    """
    path = FsPath(path)
    if not path.is_file():
        raise _file_error(path, "no such file")
    if path.suffix == ".json":
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise _file_error(path, f"is not valid JSON: {exc}") from exc
    if path.suffix != ".py":
        raise _file_error(path, "must be a .py module with workflow() or a .json definition")
    module = _import_file(path)
    workflow = getattr(module, "workflow", None)
    if not callable(workflow):
        raise _file_error(path, "has no workflow() function")
    try:
        root = workflow()
    except (Exception, SystemExit) as exc:
        raise _file_error(path, f"workflow() raised {type(exc).__name__}: {exc}") from exc
    to_json = getattr(root, "to_json", None)
    if not callable(to_json):
        raise _file_error(path, f"workflow() returned {type(root).__name__}, not a postgit node")
    return to_json()


def _import_file(path: FsPath) -> Any:
    name = f"postgit_workflow_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise _file_error(path, "cannot be imported")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.parent.resolve())
    sys.path.insert(0, folder)  # so the workflow file can import modules next to it
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        raise _file_error(path, f"does not import: {type(exc).__name__}: {exc}") from exc
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    return module


def _file_error(path: FsPath, message: str) -> DefinitionError:
    return DefinitionError([DefinitionIssue(None, None, f"{path}: {message}")])
