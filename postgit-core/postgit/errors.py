"""One exception hierarchy for everything Postgit raises on purpose."""

from __future__ import annotations

from dataclasses import dataclass


class PostgitError(Exception):
    """Base class of every error Postgit raises deliberately."""


@dataclass(frozen=True)
class DefinitionIssue:
    """One problem in a workflow definition, located by node id and field."""

    node_id: str | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = []
        if self.node_id is not None:
            where.append(f"node '{self.node_id}'")
        if self.field is not None:
            where.append(f"field '{self.field}'")
        return f"{', '.join(where)}: {self.message}" if where else self.message

    def as_dict(self) -> dict[str, str | None]:
        return {"node_id": self.node_id, "field": self.field, "message": self.message}


class DefinitionError(PostgitError):
    """A workflow definition is invalid; ``issues`` names every problem found."""

    def __init__(self, issues: list[DefinitionIssue]):
        self.issues = issues
        super().__init__("; ".join(str(issue) for issue in issues))


class PluginError(PostgitError):
    """A plugin could not be loaded, or two plugins define the same node type."""


class NotFound(PostgitError):
    """A workflow, version or instance does not exist."""


class Conflict(PostgitError):
    """The request conflicts with the current state (e.g. cancelling a finished instance)."""


class InvalidInput(PostgitError):
    """A request's input is malformed (outside of a workflow definition)."""


class SchemaError(PostgitError):
    """The database schema is missing or older than this code needs."""
