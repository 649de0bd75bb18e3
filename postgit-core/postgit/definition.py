"""Workflow definitions: the node tree, its JSON form, and loading it from a ``.py`` or ``.json`` file.

The JSON form of a node is::

    {"id": "fetch", "type": "HitEndpoint", "params": {"url": "..."}, "assignTo": "$.result",
     "retry": {"maxAttempts": 5}, "timeout": 30}

and a control-flow node (``Sequence``) has ``children`` instead of ``params``. A definition is its root node.
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

CONTROL_TYPES = frozenset({"Sequence"})
"""Node types interpreted by the engine itself rather than provided by a plugin."""

REF_KEY = "$ref"
SECRET_KEY = "$secret"  # noqa: S105 - a JSON key, not a password
SECRET_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,99}$")
"""A secret's name: the worker reads its value from ``POSTGIT_SECRET_<NAME>``."""


@dataclass(frozen=True)
class NodeSpec:
    """One node of a definition, as stored and interpreted."""

    id: str
    type: str
    params: dict[str, Any] = field(default_factory=dict)
    assign_to: str | None = None
    retry: RetryPolicy | None = None
    timeout: float | None = None
    children: tuple[NodeSpec, ...] = ()

    @property
    def is_control(self) -> bool:
        return self.type in CONTROL_TYPES

    def walk(self) -> Iterator[NodeSpec]:
        """This node and every node below it, depth first, in order."""
        yield self
        for child in self.children:
            yield from child.walk()

    def to_json(self) -> dict[str, Any]:
        """The JSON form (see the module docstring); ``NodeSpec.from_json`` reads it back unchanged."""
        out: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.is_control:
            out["children"] = [child.to_json() for child in self.children]
        else:
            out["params"] = self.params
        if self.assign_to is not None:
            out["assignTo"] = self.assign_to
        if self.retry is not None:
            out["retry"] = self.retry.to_json()
        if self.timeout is not None:
            out["timeout"] = self.timeout
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeSpec:
        """Build from already validated JSON (use :func:`postgit.validation.validate_definition` for input)."""
        return cls(
            id=data["id"],
            type=data["type"],
            params=data.get("params") or {},
            assign_to=data.get("assignTo"),
            retry=RetryPolicy.model_validate(data["retry"]) if data.get("retry") is not None else None,
            timeout=data.get("timeout"),
            children=tuple(cls.from_json(child) for child in data.get("children") or ()),
        )


@dataclass(frozen=True)
class WorkflowDefinition:
    """A validated definition: the root node and every node by id."""

    root: NodeSpec
    nodes: dict[str, NodeSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", {node.id: node for node in self.root.walk()})

    def to_json(self) -> dict[str, Any]:
        return self.root.to_json()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkflowDefinition:
        return cls(NodeSpec.from_json(data))

    def node_types(self) -> set[str]:
        """The plugin node types this definition uses."""
        return {node.type for node in self.root.walk() if not node.is_control}


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
