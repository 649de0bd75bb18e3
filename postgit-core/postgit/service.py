"""WorkflowService: what a server (or any other front end) does with workflows and instances.

The one entry point for deploying, starting, inspecting and cancelling; it validates every input before
anything is written and raises :mod:`postgit.errors` exceptions that name the problem.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jsonschema
import referencing
import referencing.exceptions

from postgit.db.store import Row, Store
from postgit.decider import Decider
from postgit.definition import ANY_WORKER, WorkflowDefinition
from postgit.engine_types import EVENT_NAME_PATTERN, RESERVED_EVENT_PREFIX
from postgit.errors import Conflict, DefinitionError, DefinitionIssue, InvalidInput, NotFound
from postgit.progress import progress
from postgit.registry import NodeRegistry
from postgit.runs import RunView
from postgit.templating import is_template
from postgit.validation import validate_definition

WORKFLOW_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
MAX_INPUT_BYTES = 1_000_000
MAX_IDEMPOTENCY_KEY_LENGTH = 200
DEFAULT_STEPS_LIMIT = 10_000
"""An instance's detail lists its latest step attempts up to this many, unless asked for more or fewer."""
MAX_STEPS_LIMIT = 1_000_000
MAX_EVENT_BYTES = 1_000_000
MAX_EVENT_KEY_LENGTH = 200
LIVE_WORKER_SECONDS = 30.0
"""A worker whose last heartbeat is older than this is not counted alive."""


@dataclass(frozen=True)
class Deployed:
    """The outcome of a deploy: the version, and whether it was created now."""

    name: str
    version: int
    created: bool


class WorkflowService:
    """Deploy, start, list, show and cancel, on top of a :class:`Store` and the installed node types."""

    def __init__(self, store: Store, registry: NodeRegistry):
        self.store = store
        self.registry = registry
        self._definitions: dict[tuple[str, int], WorkflowDefinition] = {}  # versions never change

    async def deploy(self, name: str, definition: Any) -> Deployed:
        """Validate ``definition`` and store it as a new version of ``name`` (unless it is unchanged)."""
        check_workflow_name(name)
        parsed = validate_definition(definition, self.registry)
        await self._check_sub_workflows(name, parsed)
        row, created = await self.store.deploy_workflow(name, parsed.to_json())
        return Deployed(row["name"], row["version"], created)

    async def _check_sub_workflows(self, name: str, definition: WorkflowDefinition) -> None:
        """DefinitionError naming each SubWorkflow whose workflow (or version) is not deployed."""
        issues = []
        for node in definition.root.walk():
            child = node.params.get("workflow") if node.type == "SubWorkflow" else None
            if not isinstance(child, str) or is_template(child) or child == name:
                continue
            version = node.params.get("version")
            if await self.store.get_workflow(child, version if isinstance(version, int) else None) is None:
                what = f"workflow '{child}'" + (f" version {version}" if version else "")
                issues.append(DefinitionIssue(node.id, "params.workflow", f"{what} is not deployed; deploy it first"))
        if issues:
            raise DefinitionError(issues)

    async def get_workflow(self, name: str, version: int | None = None) -> Row:
        row = await self.store.get_workflow(name, version)
        if row is None:
            raise NotFound(f"workflow '{name}'" + (f" version {version}" if version else "") + " does not exist")
        return row

    async def start(
        self,
        workflow: str,
        input: Any = None,
        *,
        idempotency_key: str | None = None,
        version: int | None = None,
        parent: tuple[uuid.UUID, str, bool] | None = None,
    ) -> tuple[Row, bool]:
        """Start an instance of ``workflow`` (its latest version unless ``version``) with ``input``.

        ``parent``: (instance id, run key, cancel with it) when a SubWorkflow starts it. Returns ``{"id",
        "status"}`` and whether it was created now (False: the idempotency key was used before).
        """
        check_workflow_name(workflow)
        size = len(json.dumps(input))
        if size > MAX_INPUT_BYTES:
            raise InvalidInput(f"input is {size} bytes; the limit is {MAX_INPUT_BYTES}")
        if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
            raise InvalidInput(f"idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters")
        row = await self.get_workflow(workflow, version)
        definition = self._definitions.get((row["name"], row["version"]))
        if definition is None:
            definition = WorkflowDefinition.from_json(row["definition"])
            self._definitions[(row["name"], row["version"])] = definition
        check_input(definition, input)
        state = {"input": input}
        plan = Decider(definition).decide(RunView(state), datetime.now(UTC))
        first = plan.ready[0].node if plan.ready else None
        parent_id, parent_run_key, cancel_with_parent = parent if parent is not None else (None, None, True)
        return await self.store.create_instance(
            workflow=row["name"],
            version=row["version"],
            state=state,
            current_node=first.id if first else None,
            node_types=sorted({run.node.type for run in plan.ready}) or [ANY_WORKER],
            idempotency_key=idempotency_key,
            timeout_seconds=definition.timeout,
            parent_id=parent_id,
            parent_run_key=parent_run_key,
            cancel_with_parent=cancel_with_parent,
        )

    async def get_instance(self, instance_id: str | uuid.UUID, *, steps_limit: int = DEFAULT_STEPS_LIMIT) -> Row:
        """An instance with its children, active branches, tree of runs and why it waits.

        It lists the latest ``steps_limit`` step attempts; ``steps_total`` says how many there are.
        """
        row = await self.store.get_instance(parse_instance_id(instance_id))
        if row is None:
            raise NotFound(f"instance {instance_id} does not exist")
        row["steps"], latest, runs, row["children"] = await asyncio.gather(
            self.store.list_steps(row["id"], steps_limit),
            self.store.latest_attempts(row["id"]),
            self.store.list_runs(row["id"]),
            self.store.list_children(row["id"]),
        )
        live_types = None
        if row["status"] in ("pending", "running", "waiting"):
            workers = await self.live_workers()
            live_types = {node_type for worker in workers for node_type in worker["node_types"]}
            if row["status"] == "pending" and not row["wait_reason"]:
                row["wait_reason"] = _missing_worker_reason(row["node_types"], workers)
        definition = await self._definition(row["workflow"], row["version"])
        row.update(progress(definition, row, latest, runs, live_types))
        steps_total = len(row["steps"])
        row["steps_total"] = steps_total if steps_total < steps_limit else await self.store.count_steps(row["id"])
        return row

    async def _definition(self, name: str, version: int) -> WorkflowDefinition:
        definition = self._definitions.get((name, version))
        if definition is None:
            row = await self.get_workflow(name, version)
            definition = self._definitions[(name, version)] = WorkflowDefinition.from_json(row["definition"])
        return definition

    async def cancel(self, instance_id: str | uuid.UUID) -> None:
        """Cancel an unfinished instance; Conflict when it already finished."""
        parsed = parse_instance_id(instance_id)
        if not await self.store.cancel_instance(parsed):
            row = await self.store.get_instance(parsed)
            if row is None:
                raise NotFound(f"instance {instance_id} does not exist")
            raise Conflict(f"instance {instance_id} is already {row['status']}")

    async def send_event(
        self, instance_id: str | uuid.UUID, name: str, data: Any = None, *, event_id: str | None = None
    ) -> Row:
        """Send an event to one instance; kept for its wait when none waits yet.

        Returns ``{"signal_id", "duplicate"}``: ``duplicate`` when ``event_id`` was sent to it before (applied
        once). NotFound for no such instance, Conflict when it has finished.
        """
        parsed = parse_instance_id(instance_id)
        check_event(name, data, event_id)
        row = await self.store.send_instance_event(parsed, name, data, event_id)
        if row is None:
            raise NotFound(f"instance {instance_id} does not exist")
        if row["signal_id"] is None and row.get("duplicate_of") is None:
            raise Conflict(f"instance {instance_id} is already {row['status']}: it takes no more events")
        return {"signal_id": row["signal_id"] or row["duplicate_of"], "duplicate": row["signal_id"] is None}

    async def send_keyed_event(self, name: str, key: str, data: Any = None, *, event_id: str | None = None) -> Row:
        """Send an event to every instance waiting on ``name`` and ``key``, now or later.

        Returns ``{"signal_id", "duplicate", "woken"}``: how many waiting instances were woken now.
        """
        check_event(name, data, event_id)
        if not isinstance(key, str) or not 0 < len(key) <= MAX_EVENT_KEY_LENGTH:
            raise InvalidInput(f"an event key must be 1 to {MAX_EVENT_KEY_LENGTH} characters")
        row = await self.store.send_keyed_event(name, key, data, event_id)
        duplicate = row["signal_id"] is None
        return {
            "signal_id": row["duplicate_of"] if duplicate else row["signal_id"],
            "duplicate": duplicate,
            "woken": row["woken"],
        }

    async def live_workers(self) -> list[Row]:
        return await self.store.list_live_workers(LIVE_WORKER_SECONDS)


def _missing_worker_reason(node_types: list[str], workers: list[Row]) -> str | None:
    """Why no worker takes a pending instance whose next runs need one of ``node_types``, if none can."""
    wanted = [node_type for node_type in node_types if node_type != ANY_WORKER]
    if not workers:
        return "no worker is running"
    if not wanted or any(node_type in worker["node_types"] for worker in workers for node_type in wanted):
        return None
    return "no live worker has node type " + " or ".join(f"'{node_type}'" for node_type in wanted)


def check_event(name: str, data: Any, event_id: str | None) -> None:
    """InvalidInput unless the event's name, data and id are acceptable."""
    if not isinstance(name, str) or not re.match(EVENT_NAME_PATTERN, name):
        raise InvalidInput(
            f"invalid event name {str(name)[:140]!r}: use 1-200 letters, digits, '_', '.', ':', '/' or '-', "
            "starting with a letter, digit or '_'"
        )
    if name.startswith(RESERVED_EVENT_PREFIX):
        raise InvalidInput(f"event names starting with '{RESERVED_EVENT_PREFIX}' are reserved for Postgit itself")
    size = len(json.dumps(data))
    if size > MAX_EVENT_BYTES:
        raise InvalidInput(f"event data is {size} bytes; the limit is {MAX_EVENT_BYTES}")
    if event_id is not None and not 0 < len(event_id) <= MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidInput(f"an event id must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters")


_NO_REMOTE_SCHEMAS: referencing.Registry[Any] = referencing.Registry()
"""Input schemas resolve ``$ref`` inside themselves only: a start never fetches a schema from the network."""


def check_input(definition: WorkflowDefinition, input: Any) -> None:
    """InvalidInput naming the field when ``input`` does not satisfy the workflow's input schema."""
    if definition.input_schema is None:
        return
    validator = jsonschema.validators.validator_for(definition.input_schema)(
        definition.input_schema, registry=_NO_REMOTE_SCHEMAS
    )
    try:
        error = jsonschema.exceptions.best_match(validator.iter_errors(input))
    except (RecursionError, referencing.exceptions.Unresolvable) as exc:
        # a schema that refers to itself without end, or to what it does not hold: the input cannot be checked
        problem = "it refers to itself without end" if isinstance(exc, RecursionError) else str(exc)
        raise InvalidInput(f"the workflow's input schema cannot check this input: {problem}") from None
    if error is not None:
        where = "input" + "".join(f"[{part!r}]" if isinstance(part, int) else f".{part}" for part in error.path)
        raise InvalidInput(f"{where}: {error.message} (the workflow's input schema)")


def check_workflow_name(name: str) -> None:
    """InvalidInput unless ``name`` is 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit."""
    if not isinstance(name, str) or not WORKFLOW_NAME.match(name):
        raise InvalidInput(
            f"invalid workflow name {str(name)[:140]!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )


def parse_instance_id(value: str | uuid.UUID) -> uuid.UUID:
    """The instance id as a UUID; NotFound when it cannot be one."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        raise NotFound(f"instance {str(value)[:100]!r} does not exist (not an instance id)") from None
