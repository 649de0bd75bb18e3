"""Request and response bodies: the API's OpenAPI contract."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from postgit.cron import MAX_CRON_LENGTH, MAX_TIMEZONE_LENGTH
from postgit.engine_types import EVENT_NAME_PATTERN
from postgit.operations import MAX_REASON_LENGTH
from postgit.outbox import MAX_SEND_BATCH
from postgit.schedules import DEFAULT_CATCHUP_WINDOW, MAX_CATCHUP_WINDOW, MIN_CATCHUP_WINDOW
from postgit.service import MAX_BATCH_STARTS
from postgit.starts import MAX_IDEMPOTENCY_KEY_LENGTH
from postgit_server.inputs import (
    ANY_JSON_TEXT,
    MAX_OUTBOX_ID,
    NO_NUL,
    NOT_RESERVED_EVENT_NAME,
    DefinitionField,
    IdempotencyKeyField,
    PriorityField,
    VersionField,
    WorkflowNameField,
)

TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})$"
"""An RFC 3339 time with its offset (``2026-12-01T00:00:00Z``)."""
PAUSED_AT = "When it was paused (null: not paused); a paused instance keeps its status and no worker takes it"

StartAtField = Annotated[
    str | None,
    Field(
        max_length=40,
        pattern=TIMESTAMP_PATTERN,
        description="A delayed start: no step runs before this time, with its offset (`2026-12-01T09:00:00Z`); the "
        "instance is `pending` until then, with a `wait_reason` saying when it starts, and can be cancelled",
        json_schema_extra={"format": "date-time"},
    ),
]


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

    name: WorkflowNameField
    definition: DefinitionField


class DeployResponse(BaseModel):
    """The version a deploy created, or the existing version with the same definition."""

    name: str
    version: int
    created: bool = Field(description="False when this exact definition was already deployed as `version`")
    warnings: list[str] | None = Field(
        default=None,
        description="Present when a live worker runs another package or version of a node type the definition uses "
        "than the deploy validated it against: one line per worker and node type",
    )


class CheckRequest(BaseModel):
    """A new definition of a deployed workflow, to replay over the recorded runs of its latest finished instances."""

    model_config = ConfigDict(extra="forbid")

    definition: DefinitionField
    instances: int = Field(default=20, ge=1, le=1000, description="How many of the latest finished instances")


class CheckedInstance(BaseModel):
    """One instance replayed: where the new definition would first act differently, if anywhere."""

    id: str
    status: str
    diverged: bool
    node_id: str | None = Field(description="The node where it diverges; null when it does not")
    run: str | None = Field(description="The run (`node[index]` inside a ForEach) where it diverges")
    reason: str | None = Field(description="How it would act differently")


class CheckResponse(BaseModel):
    """The replay of a new definition over the latest finished instances of the workflow's latest version."""

    workflow: str
    version: int = Field(description="The deployed version whose instances were replayed")
    checked: int
    diverged: int
    instances: list[CheckedInstance]


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


class PluginVersion(BaseModel):
    """Which distribution, at which version, provides a node type."""

    package: str
    version: str


class WorkflowVersion(BaseModel):
    """One version of a workflow with its definition."""

    name: str
    version: int
    definition: dict[str, Any]
    plugins: dict[str, PluginVersion] = Field(
        default_factory=dict,
        description="The package and version of each node type the deploy validated the definition against",
    )
    created_at: datetime


# -- instances ---------------------------------------------------------------------------------------------------


class StartRequest(BaseModel):
    """How to start an instance; every field is optional."""

    model_config = ConfigDict(extra="forbid")

    input: Any = Field(default=None, description=f"The instance's state starts as {{'input': input}}. {ANY_JSON_TEXT}")
    idempotency_key: IdempotencyKeyField = None
    version: VersionField = None
    start_at: StartAtField = None
    priority: PriorityField = None


class StartResponse(BaseModel):
    """The instance started (or found by its idempotency key)."""

    id: uuid.UUID
    status: InstanceStatus
    workflow: str
    created: bool = Field(description="False when the idempotency key was used before: this is that instance")
    warnings: list[str] | None = Field(
        default=None,
        description="Present when a live worker runs another package or version of a node type the definition uses "
        "than the deploy validated it against: one line per worker and node type",
    )


class BatchStartItem(BaseModel):
    """One instance of a batch start."""

    model_config = ConfigDict(extra="forbid")

    input: Any = Field(default=None, description="Any JSON value; the instance's state starts as {'input': input}")
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY_LENGTH,
        description="A key used before, by an earlier item or an earlier start, returns that instance",
    )
    priority: PriorityField = None


class BatchStartRequest(BaseModel):
    """Many instances of one workflow to start at once."""

    model_config = ConfigDict(extra="forbid")

    instances: list[BatchStartItem] = Field(
        min_length=1, max_length=MAX_BATCH_STARTS, description="1 to 1,000 instances, each started as one start is"
    )
    version: VersionField = None
    start_at: StartAtField = None
    priority: PriorityField = None


class BatchStartResult(BaseModel):
    """What became of one item of a batch: its instance, or why it did not start."""

    index: int = Field(description="The item's position in `instances`, from 0")
    id: uuid.UUID | None = Field(description="The instance; null when the item did not start")
    status: InstanceStatus | None
    created: bool | None = Field(description="False when the idempotency key was used before: this is that instance")
    error: str | None = Field(
        description="Why the item did not start, naming the field: `input.order_id: 5 is not of type 'string' ...`"
    )


class BatchStartResponse(BaseModel):
    """The outcome of a batch start, item by item in the request's order."""

    workflow: str
    started: int = Field(description="Instances created now")
    existing: int = Field(description="Items whose idempotency key was used before (their instance is returned)")
    failed: int = Field(description="Items that did not start (see their `error`)")
    results: list[BatchStartResult]
    warnings: list[str] | None = Field(
        default=None,
        description="Present when a live worker runs another package or version of a node type the definition uses "
        "than the deploy validated it against: one line per worker and node type",
    )


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
    paused_at: datetime | None = Field(default=None, description=PAUSED_AT)
    pause_reason: str | None = Field(default=None, description="Why it was paused, while it is")
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @computed_field(description="Whether it is paused: no worker takes it until it is resumed")  # type: ignore[prop-decorator]
    @property
    def paused(self) -> bool:
        return self.paused_at is not None


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
    status: str = Field(
        description="completed, failed, suspended, or interrupted: its worker stopped before it ended (the "
        "attempt is run again)"
    )
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
    logs: str | None = Field(
        default=None,
        description="What the handler logged through `ctx.logger`, a line each (`<time> <LEVEL> <message>`), secrets "
        "redacted, at most 64 KB per attempt (a last line says how much was left out): only when the request asks "
        "for `logs=true`; null when it does not, or when nothing was logged",
    )


class Interruption(BaseModel):
    """A worker that stopped while it held the instance: its lease expired and another worker took it over."""

    worker: str | None = Field(description="The worker that stopped")
    lease_expired_at: datetime | None = Field(description="When its lease on the instance expired")
    taken_over_by: str | None = Field(description="The worker that took the instance over")
    at: datetime = Field(description="When it was taken over")


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
    paused_at: datetime | None = Field(default=None, description=PAUSED_AT)
    pause_reason: str | None = Field(default=None, description="Why it was paused, while it is")
    retries: int = Field(default=0, description="How many times it was retried (`POST /instances/{id}/retry`)")
    priority: int = Field(default=3, description="1 (claimed first) to 5 (last)")
    concurrency_key: str | None = Field(
        default=None, description="Its workflow's concurrency key rendered over its input (null: the workflow has none)"
    )
    holds_slot: bool = Field(default=False, description="Whether it holds one of its concurrency key's slots")
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @computed_field(description="Whether it is paused: no worker takes it until it is resumed")  # type: ignore[prop-decorator]
    @property
    def paused(self) -> bool:
        return self.paused_at is not None

    branches: list[Branch] = Field(default_factory=list, description="The active leaf runs (none once finished)")
    tree: RunNode | None = Field(default=None, description="The definition's nodes with the state of their runs")
    children: list[ChildInstance] = Field(default_factory=list, description="Instances it started, oldest first")
    steps: list[Step] = Field(description="Its latest step attempts (see `steps_limit`), in the order they started")
    steps_total: int = Field(description="How many step attempts it has recorded")
    interruptions: list[Interruption] = Field(
        default_factory=list, description="Workers that stopped while they held it, oldest first"
    )


class CancelResponse(BaseModel):
    """A cancelled instance."""

    id: uuid.UUID
    status: InstanceStatus


class PauseRequest(BaseModel):
    """Why an instance is paused (optional)."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(
        default=None, max_length=MAX_REASON_LENGTH, pattern=NO_NUL, description="Shown while it is paused"
    )


class PauseResponse(BaseModel):
    """A paused or resumed instance."""

    id: uuid.UUID
    status: InstanceStatus = Field(description="Its status, which pausing does not change")
    paused: bool


class RetryRequest(BaseModel):
    """Where a failed or cancelled instance runs again from, and on which version."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_node: str | None = Field(
        default=None,
        alias="from",
        min_length=1,
        max_length=200,
        pattern=NO_NUL,
        description="Re-run from this node (it and everything after it); default: from the run that failed it",
    )
    latest: bool = Field(
        strict=True,
        default=False,
        description="Run on the workflow's latest version (the node must exist there); default its own",
    )


class RetryResponse(BaseModel):
    """A retried instance."""

    id: uuid.UUID
    status: InstanceStatus
    version: int = Field(description="The version it runs now")
    retry: int = Field(description="How many times it was retried, this one included")
    steps_retired: int = Field(description="Step attempts of the runs that re-run, moved aside")


class BulkAction(StrEnum):
    """What a bulk request does to each instance."""

    retry = "retry"
    cancel = "cancel"
    pause = "pause"
    resume = "resume"


class BulkRequest(BaseModel):
    """An action on every instance of a workflow in a status, oldest first (at most 10,000 per request)."""

    model_config = ConfigDict(extra="forbid")

    action: BulkAction
    workflow: WorkflowNameField
    status: InstanceStatus = Field(
        description="retry takes failed or cancelled instances; cancel, pause and resume take pending, running or "
        "waiting ones (400 otherwise)"
    )
    since: str | None = Field(
        default=None,
        max_length=40,
        pattern=TIMESTAMP_PATTERN,
        description="Only instances created at or after this time, with its offset (`2026-12-01T00:00:00Z`)",
        json_schema_extra={"format": "date-time"},
    )
    dry_run: bool = Field(default=False, strict=True, description="Only count the instances it would touch")
    latest: bool = Field(default=False, strict=True, description="retry: on the workflow's latest version")


class BulkError(BaseModel):
    """An instance a bulk action skipped (it changed meanwhile), and why."""

    id: uuid.UUID
    error: str


class BulkResponse(BaseModel):
    """What a bulk action did."""

    action: BulkAction
    dry_run: bool
    matched: int = Field(description="Instances that matched the filter")
    done: int = Field(description="Instances the action was done to (0 on a dry run)")
    skipped: int = Field(description="Instances that changed meanwhile and were left alone")
    errors: list[BulkError] = Field(description="Why, for the first 100 skipped")


class SendEvent(BaseModel):
    """An event for one instance."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1,
        max_length=200,
        pattern=EVENT_NAME_PATTERN,
        description="The event's name, as WaitForEvent names it; names starting with 'postgit.' are reserved",
        json_schema_extra=NOT_RESERVED_EVENT_NAME,
    )
    data: Any = Field(default=None, description=f"The waiting node's output `data`. {ANY_JSON_TEXT}")
    event_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=NO_NUL,
        description="Sending the same event id again applies it once",
    )


class SendKeyedEvent(SendEvent):
    """An event for every instance waiting on its name and key, now or later."""

    key: str = Field(min_length=1, max_length=200, pattern=NO_NUL, description="The correlation key the waits name")


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


# -- schedules ---------------------------------------------------------------------------------------------------

TIMEZONE_PATTERN = r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$"


class Overlap(StrEnum):
    """What a fire does while the instance the schedule started last is still running."""

    skip = "skip"
    buffer_one = "buffer_one"
    buffer_all = "buffer_all"
    cancel_other = "cancel_other"
    terminate_other = "terminate_other"
    allow_all = "allow_all"


class ScheduleCreate(BaseModel):
    """A schedule: start `workflow` with `input` at every time `cron` matches in `timezone`."""

    model_config = ConfigDict(extra="forbid")

    name: WorkflowNameField
    workflow: WorkflowNameField
    cron: str = Field(
        min_length=1,
        max_length=MAX_CRON_LENGTH,
        pattern=NO_NUL,
        description=(
            "A cron expression: 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds last "
            "(`*/10 * * * * *`... read as croniter reads them), or `@hourly`, `@daily`...; one that does not parse, "
            "or matches no time within 5 years, answers 400"
        ),
    )
    timezone: str = Field(
        default="UTC",
        min_length=1,
        max_length=MAX_TIMEZONE_LENGTH,
        pattern=TIMEZONE_PATTERN,
        description="The IANA time zone the expression is read in (`Europe/Paris`); an unknown one answers 400",
    )
    input: Any = Field(default=None, description=f"Each instance's input. {ANY_JSON_TEXT}")
    overlap: Overlap = Field(default=Overlap.skip, description="What a fire does while the last instance runs")
    catchup_window: float = Field(
        default=DEFAULT_CATCHUP_WINDOW,
        strict=True,  # a number, not text that reads as one
        ge=MIN_CATCHUP_WINDOW,
        le=MAX_CATCHUP_WINDOW,
        description="Seconds: a fire handled later than this after its time (after an outage) is missed",
    )
    paused: bool = Field(default=False, strict=True, description="Create it paused")


class ScheduleFire(BaseModel):
    """What became of a nominal time, or of a run of them (skipped, missed)."""

    nominal_at: datetime
    last_nominal_at: datetime = Field(description="The last nominal time of the run (the same for one fire)")
    fires: int = Field(description="How many nominal times the record covers")
    kind: str = Field(description="scheduled, trigger or backfill")
    outcome: str = Field(description="started, skipped, missed, buffered or failed")
    instance_id: uuid.UUID | None
    detail: str | None = Field(description="Why it was skipped, missed or failed")
    recorded_at: datetime


class ScheduleSummary(BaseModel):
    """A schedule and when it fires next."""

    name: str
    workflow: str
    cron: str
    timezone: str
    input: Any
    overlap: Overlap
    catchup_window: float
    paused: bool
    next_fire_at: datetime | None = Field(description="The next nominal time; null while paused")
    buffered: list[datetime] = Field(description="Nominal times waiting for the last instance to finish")
    last_instance_id: uuid.UUID | None
    last_instance_status: InstanceStatus | None
    created_at: datetime
    updated_at: datetime


class ScheduleDetail(ScheduleSummary):
    """A schedule with its next fire times and its latest fire records."""

    upcoming: list[datetime] = Field(description="The next fire times (none while paused)")
    fires: list[ScheduleFire] = Field(description="The latest fire records, newest first")


class TriggerResponse(BaseModel):
    """The instance a trigger started."""

    schedule: str
    nominal_time: datetime = Field(description="The time the trigger stands for: now")
    id: uuid.UUID
    status: InstanceStatus
    created: bool


class BackfillRequest(BaseModel):
    """The nominal times to fire, from `from` to `to` (both included)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: str = Field(
        alias="from",
        max_length=40,
        pattern=TIMESTAMP_PATTERN,
        description="The first time, with its offset (`2026-12-01T00:00:00Z`)",
        json_schema_extra={"format": "date-time"},
    )
    end: str = Field(
        alias="to",
        max_length=40,
        pattern=TIMESTAMP_PATTERN,
        description="The last time, with its offset; not in the future",
        json_schema_extra={"format": "date-time"},
    )


class BackfillResponse(BaseModel):
    """What a backfill started."""

    schedule: str
    fires: int = Field(description="Nominal times in the range")
    started: int = Field(description="Instances created now")
    existing: int = Field(description="Times fired before: their instance was kept")
    failed: int = Field(description="Times whose start was refused")
    errors: list[str] = Field(description="Why, for the first few refused")


# -- plugins, workers, outbox ------------------------------------------------------------------------------------


class PluginRow(BaseModel):
    """One node type, where it comes from, and who can run it."""

    name: str = Field(description="The node type")
    package: str | None = Field(description="The distribution that provides it (on this server)")
    version: str | None = Field(description="That distribution's version (on this server)")
    description: str | None
    plugin: str | None = Field(
        description="The registered plugin name, '<distribution>:<entry point>'; 'engine' for the node types the "
        "engine runs itself (control flow, WaitForEvent, SubWorkflow)"
    )
    builtin: bool = Field(default=False, description="Whether the engine itself runs it, on every worker")
    on_server: bool = Field(description="Whether this server can validate definitions that use it")
    workers: list[str] = Field(description="Ids of the live workers that can run it")
    worker_versions: dict[str, PluginVersion | None] = Field(
        default_factory=dict,
        description="Per live worker that can run it, the package and version that worker runs (null: not recorded)",
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="One line per live worker that runs another package or version of it than this server",
    )
    worker_queues: dict[str, list[str] | None] = Field(
        default_factory=dict,
        description="Per live worker that can run it, the queues that worker serves (null: every queue)",
    )


class WorkerRow(BaseModel):
    """One live worker."""

    id: str
    host: str
    pid: int
    node_types: list[str]
    queues: list[str] | None = Field(
        default=None,
        description="The queues whose steps it runs (POSTGIT_QUEUES; `default`: steps that name no queue); "
        "null: every queue",
    )
    plugins: dict[str, PluginVersion] = Field(
        default_factory=dict, description="The package and version of each node type it runs"
    )
    started_at: datetime
    heartbeat_at: datetime
    seconds_since_heartbeat: float


class OutboxMessage(BaseModel):
    """An email of the outbox: parked because no SMTP server was configured, and its delivery once sent."""

    id: int
    idempotency_key: str
    message: Any = Field(description="The email as the SendEmail step built it (`message_id` is its Message-ID)")
    created_at: datetime
    sent_at: datetime | None = Field(default=None, description="When it was sent (null: still parked)")
    sent_via: str | None = Field(default=None, description="The SMTP server it was sent through (`smtp://host:port`)")
    attempts: int = Field(default=0, description="How often sending it was tried")
    last_error: str | None = Field(default=None, description="Why the last try failed")


class OutboxDelivery(BaseModel):
    """What became of one message asked to be sent."""

    id: int
    status: Literal["sent", "already_sent", "failed", "busy"] = Field(
        description="sent now; already_sent before (not sent again); failed (`error` says why; it stays parked); "
        "busy (another request is sending it)"
    )
    error: str | None = None
    message_id: str | None = Field(description="The email's Message-ID, derived from its step's idempotency key")
    sent_at: datetime | None
    sent_via: str | None


class OutboxSendRequest(BaseModel):
    """Which parked messages to send: the oldest `limit` after `after_id`."""

    model_config = ConfigDict(extra="forbid")

    after_id: int = Field(default=0, ge=0, le=MAX_OUTBOX_ID, description="Send messages with a greater id")
    limit: int = Field(default=100, ge=1, le=MAX_SEND_BATCH, description="Send at most this many")


class OutboxSendResponse(BaseModel):
    """What became of each parked message sent."""

    sent: int
    already_sent: int
    failed: int
    busy: int
    results: list[OutboxDelivery] = Field(description="One per message, oldest first")
    next_after_id: int | None = Field(
        description="More parked messages follow: send again with this `after_id` (null: none is left after these)"
    )


class AuditEntry(BaseModel):
    """One state-changing request, as the audit log recorded it."""

    id: int
    at: datetime = Field(description="When the server answered it")
    actor: str = Field(description="The name of the token that sent it (`anonymous` on a server without tokens)")
    role: Literal["viewer", "operator", "admin"] = Field(description="The token's role")
    via: Literal["api", "console"] = Field(description="Sent to the API directly, or by an action in the console")
    action: str = Field(description="The API operation, by its operation id (`cancel_instance`, `deploy`, ...)")
    target: str | None = Field(description="What it acted on (`instance <id>`, `workflow <name>`, ...)")
    detail: dict[str, Any] = Field(description="A few small values of the request (an event's name, a version)")
    status: int = Field(description="The HTTP status it was answered with (a refusal is recorded too)")


class AuditPage(BaseModel):
    """A page of the audit log, newest first."""

    items: list[AuditEntry]
    next_before: int | None = Field(description="Pass as `before` for the next (older) page; null on the last page")
