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
from postgit.sdk import HitEndpoint, Node, Ref, Secret, SendEmail, Sequence, Sleep, ref, secret

try:
    __version__ = version("postgit-core")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without installing
    __version__ = "0.0.0"

__all__ = [
    "Completed",
    "DefinitionError",
    "DefinitionIssue",
    "FatalError",
    "HitEndpoint",
    "Node",
    "NodeSpec",
    "NodeType",
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
    "Suspended",
    "WorkflowDefinition",
    "__version__",
    "hookimpl",
    "load_definition_file",
    "ref",
    "secret",
]
