"""Request and response bodies: the API's OpenAPI contract."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_INT4 = 2**31 - 1
"""The largest version number PostgreSQL's ``integer`` holds."""


class InstanceStatus(StrEnum):
    """Where an instance is in its life."""

    pending = "pending"
    running = "running"
    waiting = "waiting"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


class Health(BaseModel):
    """The health check's answer."""

    status: str = Field(description="'ok' when the server and its database answer")
    database: str = Field(description="'ok', or why the database cannot be reached")


class ErrorBody(BaseModel):
    """Every 4xx and 503 answer: what is wrong, in one line."""

    detail: str = Field(description="What is wrong, in one line")


class ValidationIssue(BaseModel):
    """One malformed part of a request."""

    location: str = Field(description="Where, e.g. 'body.definition' or 'query.limit'")
    message: str
    type: str


class ValidationErrorBody(ErrorBody):
    """A request FastAPI could not read: malformed JSON, a missing field, a value of the wrong type."""

    errors: list[ValidationIssue]


class DefinitionIssueBody(BaseModel):
    """One problem in a definition, located by node id and field."""

    node_id: str | None
    field: str | None
    message: str


class DefinitionErrorBody(ErrorBody):
    """A refused definition: a one-line summary and every issue."""

    issues: list[DefinitionIssueBody] = Field(description="Every problem found, each located by node id and field")


# -- workflows ---------------------------------------------------------------------------------------------------


class DeployRequest(BaseModel):
    """A workflow definition to deploy under a name."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="1-128 letters, digits, '.', '_' or '-', starting with a letter or digit")
    definition: Any = Field(description="The workflow's root node in JSON form", json_schema_extra={"type": "object"})


class DeployResponse(BaseModel):
    """The version a deploy created, or the existing version with the same definition."""

    name: str
    version: int
    created: bool = Field(description="False when this exact definition was already deployed as `version`")


class WorkflowSummary(BaseModel):
    """One workflow in the workflow list."""

    name: str
    latest_version: int
    versions: int = Field(description="How many versions were deployed")
    created_at: datetime = Field(description="When the first version was deployed")
    updated_at: datetime = Field(description="When the latest version was deployed")


class VersionSummary(BaseModel):
    """One deployed version of a workflow."""

    version: int
    created_at: datetime


class WorkflowDetail(BaseModel):
    """A workflow's latest definition and its versions."""

    name: str
    latest_version: int
    definition: dict[str, Any] = Field(description="The latest version's definition")
    versions: list[VersionSummary] = Field(description="Every version, newest first")


class WorkflowVersion(BaseModel):
    """One version of a workflow with its definition."""

    name: str
    version: int
    definition: dict[str, Any]
    created_at: datetime


# -- instances ---------------------------------------------------------------------------------------------------


class StartRequest(BaseModel):
    """How to start an instance; every field is optional."""

    model_config = ConfigDict(extra="forbid")

    input: Any = Field(default=None, description="Any JSON value; the instance's state starts as {'input': input}")
    idempotency_key: str | None = Field(
        default=None, description="Starting twice with one key returns the first instance (also: Idempotency-Key)"
    )
    version: int | None = Field(default=None, ge=1, le=MAX_INT4, description="The version to run; default latest")


class StartResponse(BaseModel):
    """The instance started (or found by its idempotency key)."""

    id: uuid.UUID
    status: InstanceStatus
    workflow: str
    created: bool = Field(description="False when the idempotency key was used before: this is that instance")


class InstanceSummary(BaseModel):
    """One instance in the instance list."""

    id: uuid.UUID
    workflow: str
    version: int
    status: InstanceStatus
    current_node: str | None
    node_type: str | None
    attempt: int
    error: Any
    wait_reason: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class InstancePage(BaseModel):
    """A page of instances."""

    items: list[InstanceSummary] = Field(description="Newest first")
    limit: int
    offset: int
    next_offset: int | None = Field(description="The offset of the next page; null on the last page")


class Step(BaseModel):
    """One attempt of one step."""

    node_id: str
    attempt: int
    status: str = Field(description="completed, failed or suspended")
    params: Any
    output: Any
    error: Any
    worker_id: str | None
    started_at: datetime
    finished_at: datetime | None
    duration_ms: float | None


class InstanceDetail(BaseModel):
    """An instance with its state and steps."""

    id: uuid.UUID
    workflow: str
    version: int
    status: InstanceStatus
    state: Any = Field(description="The state document `$`")
    current_node: str | None
    node_type: str | None
    attempt: int
    error: Any
    wait_reason: str | None = Field(description="Why a pending instance does not run, when it is known")
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    steps: list[Step]


class CancelResponse(BaseModel):
    """A cancelled instance."""

    id: uuid.UUID
    status: InstanceStatus


class Event(BaseModel):
    """The JSON ``data`` of one server-sent event."""

    id: int
    kind: str
    node_id: str | None
    data: Any
    at: datetime


# -- plugins, workers, outbox ------------------------------------------------------------------------------------


class PluginRow(BaseModel):
    """One node type, where it comes from, and who can run it."""

    name: str = Field(description="The node type")
    package: str | None = Field(description="The distribution that provides it")
    version: str | None = Field(description="That distribution's version")
    description: str | None
    plugin: str | None = Field(description="The registered plugin name, '<distribution>:<entry point>'")
    on_server: bool = Field(description="Whether this server can validate definitions that use it")
    workers: list[str] = Field(description="Ids of the live workers that can run it")


class WorkerRow(BaseModel):
    """One live worker."""

    id: str
    host: str
    pid: int
    node_types: list[str]
    started_at: datetime
    heartbeat_at: datetime
    seconds_since_heartbeat: float


class OutboxMessage(BaseModel):
    """An email parked in the outbox."""

    id: int
    idempotency_key: str
    message: Any = Field(description="The email as the SendEmail step built it")
    created_at: datetime
