"""Postgit: durable workflows on PostgreSQL.

The SDK builds workflow definitions; the plugin API declares node types.
"""

from importlib.metadata import PackageNotFoundError, version

# Workflow SDK
from postgit.definition import NodeSpec, WorkflowDefinition, load_definition_file
from postgit.errors import DefinitionError, DefinitionIssue, PluginError, PostgitError

# Plugin API
from postgit.hookspecs import hookimpl
from postgit.nodes import NodeType, StepContext
from postgit.outcomes import Completed, FatalError, RetryableError, Suspended
from postgit.retry import RetryPolicy
from postgit.sdk import (
    ForEach,
    HitEndpoint,
    If,
    Node,
    Parallel,
    Ref,
    Secret,
    SendEmail,
    Sequence,
    Sleep,
    SubWorkflow,
    Switch,
    Try,
    WaitForEvent,
    Workflow,
    ref,
    secret,
)

try:
    __version__ = version("postgit-core")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without installing
    __version__ = "0.0.0"

__all__ = [
    "Completed",
    "DefinitionError",
    "DefinitionIssue",
    "FatalError",
    "ForEach",
    "HitEndpoint",
    "If",
    "Node",
    "NodeSpec",
    "NodeType",
    "Parallel",
    "PluginError",
    "PostgitError",
    "Ref",
    "RetryPolicy",
    "RetryableError",
    "Secret",
    "SendEmail",
    "Sequence",
    "Sleep",
    "StepContext",
    "SubWorkflow",
    "Suspended",
    "Switch",
    "Try",
    "WaitForEvent",
    "Workflow",
    "WorkflowDefinition",
    "__version__",
    "hookimpl",
    "load_definition_file",
    "ref",
    "secret",
]
