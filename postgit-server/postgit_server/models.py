"""Request and response bodies: the API's OpenAPI contract."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from postgit.engine_types import EVENT_NAME_PATTERN

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
    current_node: str | None = Field(
        description="Compatibility field: the node of the first active branch (see the instance's `branches`)"
    )
    node_type: str | None = Field(description="Compatibility field: the type of `current_node`")
    attempt: int
    error: Any
    wait_reason: str | None
    parent_id: uuid.UUID | None = Field(default=None, description="The instance that started it (SubWorkflow)")
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

    run_key: str = Field(description="The run: the node id, then the item index of each enclosing ForEach")
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
    due_at: datetime | None = Field(
        default=None, description="Suspended: when it wakes up; failed: when it is retried (null: not retried)"
    )
    wait_event: str | None = Field(default=None, description="The event a suspended step waits for")
    wait_key: str | None = Field(default=None, description="That event's correlation key")


class Branch(BaseModel):
    """A leaf run of an unfinished instance that runs, is ready to, or waits."""

    run_key: str
    node_id: str
    node_type: str
    status: str = Field(description="running, ready, blocked (no live worker has its node type) or waiting")
    attempt: int | None
    waiting_for: str | None = Field(description="What it waits for, in words")
    due_at: str | None = Field(description="When its wait ends (a timer, a retry, an event's timeout)")
    event: str | None = Field(default=None, description="The event it waits for")
    event_key: str | None = Field(default=None, description="That event's correlation key")


class ItemProgress(BaseModel):
    """A ForEach's items, counted."""

    total: int | None
    completed: int
    failed: int
    running: int
    pending: int | None = Field(description="Items not started yet")
    running_items: list[int] = Field(default_factory=list, description="Indexes of (up to 20) running items")


class RunNode(BaseModel):
    """A node of the definition and how its run stands; a ForEach counts its items instead of listing them."""

    node_id: str
    type: str
    run_key: str | None = None
    role: str | None = Field(default=None, description="Branch name, then/else, case/default, body/catch/finally")
    status: str | None = Field(
        default=None, description="pending, running, ready, blocked, waiting, completed, failed, skipped or cancelled"
    )
    items: ItemProgress | None = None
    children: list[RunNode] = Field(default_factory=list)


class ChildInstance(BaseModel):
    """An instance a SubWorkflow node started."""

    id: uuid.UUID
    workflow: str
    version: int
    status: InstanceStatus
    parent_run_key: str | None = Field(description="The run of the parent that started it")
    created_at: datetime
    finished_at: datetime | None


class InstanceDetail(BaseModel):
    """An instance with its state and steps."""

    id: uuid.UUID
    workflow: str
    version: int
    status: InstanceStatus
    state: Any = Field(description="The state document `$`")
    current_node: str | None = Field(
        description="Compatibility field: the node of the first active branch (see `branches`)"
    )
    node_type: str | None = Field(description="Compatibility field: the type of `current_node`")
    attempt: int = Field(description="Compatibility field: the attempt of `current_node`")
    error: Any
    wait_reason: str | None = Field(description="Why the instance waits or does not run, when it is known")
    deadline_at: datetime | None = Field(default=None, description="When it fails unless finished (its timeout)")
    parent_id: uuid.UUID | None = Field(default=None, description="The instance that started it (SubWorkflow)")
    parent_run_key: str | None = Field(default=None, description="The run of the parent that started it")
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    branches: list[Branch] = Field(default_factory=list, description="The active leaf runs (none once finished)")
    tree: RunNode | None = Field(default=None, description="The definition's nodes with the state of their runs")
    children: list[ChildInstance] = Field(default_factory=list, description="Instances it started, oldest first")
    steps: list[Step] = Field(description="Its latest step attempts (see `steps_limit`), in the order they started")
    steps_total: int = Field(description="How many step attempts it has recorded")


class CancelResponse(BaseModel):
    """A cancelled instance."""

    id: uuid.UUID
    status: InstanceStatus


class SendEvent(BaseModel):
    """An event for one instance."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1,
        max_length=200,
        pattern=EVENT_NAME_PATTERN,
        description="The event's name, as WaitForEvent names it",
    )
    data: Any = Field(default=None, description="Any JSON value: the waiting node's output `data`")
    event_id: str | None = Field(
        default=None, min_length=1, max_length=200, description="Sending the same event id again applies it once"
    )


class SendKeyedEvent(SendEvent):
    """An event for every instance waiting on its name and key, now or later."""

    key: str = Field(min_length=1, max_length=200, description="The correlation key the waits name")


class EventAccepted(BaseModel):
    """A stored event."""

    signal_id: int = Field(description="The stored event's id")
    duplicate: bool = Field(description="True when the event id was sent before: nothing new was stored")
    woken: int | None = Field(default=None, description="Keyed events: how many waiting instances were woken now")


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
