"""WorkflowService: what a server (or any other front end) does with workflows and instances.

The one entry point for deploying, starting, inspecting and cancelling; it validates every input before
anything is written and raises :mod:`postgit.errors` exceptions that name the problem.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from postgit.db.store import Row, Store
from postgit.definition import ANY_QUEUE, ANY_WORKER, WorkflowDefinition
from postgit.engine_types import EVENT_NAME_PATTERN, RESERVED_EVENT_PREFIX
from postgit.errors import Conflict, DefinitionError, DefinitionIssue, InvalidInput, NotFound, PostgitError
from postgit.gathering import SharedDeadlines
from postgit.interruptions import interrupted_steps, lease_expiries, with_interrupted
from postgit.plugin_versions import VersionMismatch, mismatches, registry_versions
from postgit.progress import progress
from postgit.registry import NodeRegistry
from postgit.starts import (
    MAX_IDEMPOTENCY_KEY_LENGTH,
    Deployed,
    ItemError,
    NewInstance,
    Started,
    StartItem,
    StartQueue,
    prepare,
    starts_at_reason,
)
from postgit.templating import is_template
from postgit.validation import validate_definition

MAX_WORKFLOW_NAME_LENGTH = 128
WORKFLOW_NAME_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_WORKFLOW_NAME_LENGTH - 1}}}$"
"""A workflow's name: 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit."""
WORKFLOW_NAME = re.compile(WORKFLOW_NAME_PATTERN)
WORKFLOW_NAME_RULE = "1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
INSTANCE_ID = re.compile(r"^[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}$")
"""An instance id as text: a UUID in its usual form, 8-4-4-4-12 hexadecimal digits."""
MAX_BATCH_STARTS = 1_000
"""The most instances one :meth:`WorkflowService.start_many` call starts."""
MAX_BATCH_INPUT_BYTES = 32_000_000
"""The most JSON the inputs of one :meth:`WorkflowService.start_many` call may hold together."""
MAX_STALE_RETRIES = 5
"""How often a start taken as a workflow's latest version is tried again when a newer version was deployed."""
DEFAULT_STEPS_LIMIT = 10_000
"""An instance's detail lists its latest step attempts up to this many, unless asked for more or fewer."""
MAX_STEPS_LIMIT = 1_000_000
MAX_EVENT_BYTES = 1_000_000
MAX_EVENT_KEY_LENGTH = 200
ACTIVE_STATUSES = frozenset({"pending", "running", "waiting"})
LIVE_WORKER_SECONDS = 30.0
"""A worker whose last heartbeat is older than this is not counted alive."""
WORKER_VIEW_SECONDS = 5.0
"""How long a start reuses what it last read of the live workers' plugin versions, to warn about a mismatch."""
MAX_LOGGED_MISMATCHES = 10_000

log = logging.getLogger("postgit.service")


@dataclass(frozen=True)
class Deployment:
    """The outcome of a deploy: the version, and whether it was created now."""

    name: str
    version: int
    created: bool
    warnings: tuple[str, ...] = ()
    """One line per live worker that runs another version of a node type the definition uses."""


class WorkflowService:
    """Deploy, start, list, show and cancel, on top of a :class:`Store` and the installed node types."""

    def __init__(self, store: Store, registry: NodeRegistry):
        self.store = store
        self.registry = registry
        self._versions: dict[tuple[str, int], Deployed] = {}  # versions never change
        self._latest: dict[str, int] = {}
        """The latest version of each workflow as this service last saw it; a start checks it is still the latest."""
        self._starts = StartQueue(store)
        self.deadlines = SharedDeadlines()
        """What starts with a ``not_before`` wait for: those of one time share a statement."""
        self._workers_view: tuple[float, list[Row]] | None = None
        self._workers_read: asyncio.Future[list[Row]] | None = None
        self._logged_mismatches: set[VersionMismatch] = set()

    async def deploy(self, name: str, definition: Any) -> Deployment:
        """Validate ``definition`` and store it as a new version of ``name`` (unless it is unchanged).

        The version records the package and version of each node type it was validated against; the deployment's
        ``warnings`` name each live worker that runs another one.
        """
        check_workflow_name(name)
        parsed = validate_definition(definition, self.registry)
        await self._check_sub_workflows(name, parsed)
        plugins = registry_versions(self.registry, parsed.node_types())
        row, created = await self.store.deploy_workflow(name, parsed.to_json(), plugins)
        self._latest.pop(name, None)
        try:
            workers = await self.live_workers()
        except Exception as exc:  # deployed by now: the warning is what is lost, not the deploy
            log.info("could not compare plugin versions for the deploy of '%s': %s", name, exc)
            workers = []
        else:
            self._workers_view = (time.monotonic(), workers)
        return Deployment(row["name"], row["version"], created, self._warn(mismatches(plugins, workers)))

    async def start_warnings(self, workflow: str, version: int | None = None) -> tuple[str, ...]:
        """One line per live worker that runs another version of a node type than ``workflow``'s deploy checked.

        ``version``: the version started (the latest when None). The live workers are read at most every
        :data:`WORKER_VIEW_SECONDS`, so that a busy server's starts cost no extra query. The instance has started
        by then: a failure to read them is logged, not raised.
        """
        try:
            deployed = await self._deployed(workflow, version)
            expected = deployed.plugins or registry_versions(self.registry, deployed.definition.node_types())
            if not expected:
                return ()
            workers = await self._recent_workers()
        except Exception as exc:
            log.info("could not compare plugin versions for a start of '%s': %s", workflow, exc)
            return ()
        return self._warn(mismatches(expected, workers))

    async def _recent_workers(self) -> list[Row]:
        """The live workers as read at most :data:`WORKER_VIEW_SECONDS` ago; one read for all concurrent callers."""
        view = self._workers_view
        if view is not None and time.monotonic() - view[0] <= WORKER_VIEW_SECONDS:
            return view[1]
        if self._workers_read is None or self._workers_read.done():
            self._workers_read = asyncio.ensure_future(self.live_workers())
        read = self._workers_read
        workers = await asyncio.shield(read)
        self._workers_view = (time.monotonic(), workers)
        return workers

    def plugin_mismatches(self, workers: list[Row]) -> list[VersionMismatch]:
        """Each live worker's node type whose package or version differs from this server's; logged once each."""
        found = mismatches(registry_versions(self.registry), workers)
        self._warn(found)
        return found

    def _warn(self, found: list[VersionMismatch]) -> tuple[str, ...]:
        """The messages of ``found``; each is logged the first time this service sees it."""
        for mismatch in found:
            if mismatch not in self._logged_mismatches:
                if len(self._logged_mismatches) >= MAX_LOGGED_MISMATCHES:  # workers come and go under new ids
                    self._logged_mismatches.clear()
                self._logged_mismatches.add(mismatch)
                log.warning("plugin version mismatch: %s", mismatch.message())
        return tuple(mismatch.message() for mismatch in found)

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
        traceparent: str | None = None,
        start_at: datetime | None = None,
        priority: int | None = None,
        not_before: float | None = None,
    ) -> tuple[Row, bool]:
        """Start an instance of ``workflow`` (its latest version unless ``version``) with ``input``.

        ``parent``: (instance id, run key, cancel with it) when a SubWorkflow starts it. ``traceparent``: the W3C
        trace context of the start request (kept when valid: the steps' spans join that trace). ``start_at``: not
        before then (a delayed start: ``pending`` until then). ``priority``: 1 (claimed first) to 5 (last), 3 by
        default. ``not_before``: a ``time.monotonic()`` time before which the checked and encoded start is not
        written (a schedule's start, prepared ahead of its nominal time). Returns ``{"id", "status"}`` and whether
        it was created now (False: the idempotency key was used before).
        """
        item = StartItem(input, idempotency_key, parent, traceparent, start_at, priority)
        [outcome] = await self._start(workflow, [item], version, not_before)
        if isinstance(outcome, ItemError):
            raise InvalidInput(str(outcome))
        return {"id": outcome.id, "status": outcome.status}, outcome.created

    async def start_many(
        self, workflow: str, items: Sequence[StartItem], *, version: int | None = None
    ) -> list[Started | ItemError]:
        """Start up to :data:`MAX_BATCH_STARTS` instances of ``workflow`` with one statement; outcomes in order.

        An item that cannot start (its input fails the workflow's input schema, is too large, or its idempotency
        key is malformed) gets its :class:`ItemError` and the others start. An item whose idempotency key was used
        before, in an earlier start or by an earlier item of ``items``, gets that instance (``created`` False).
        Nothing is written when the statement fails. InvalidInput or NotFound for the workflow and version.
        """
        if len(items) > MAX_BATCH_STARTS:
            raise InvalidInput(f"{len(items)} instances in one batch; the limit is {MAX_BATCH_STARTS}")
        return await self._start(workflow, items, version)

    async def _start(
        self, workflow: str, items: Sequence[StartItem], version: int | None, not_before: float | None = None
    ) -> list[Started | ItemError]:
        check_workflow_name(workflow)
        started: dict[int, Started] = {}
        for _ in range(MAX_STALE_RETRIES):
            deployed = await self._deployed(workflow, version)
            now = datetime.now(UTC)
            refused: dict[int, ItemError] = {}
            sent: dict[int, NewInstance] = {}
            repeats: dict[int, int] = {}  # an item with the key of an earlier one -> that one's index
            first_with_key: dict[str, int] = {}
            for index, item in enumerate(items):
                if index in started:
                    continue
                prepared = prepare(deployed, item, version is None, now)
                if isinstance(prepared, ItemError):
                    refused[index] = prepared
                elif prepared.idempotency_key in first_with_key:
                    repeats[index] = first_with_key[prepared.idempotency_key]
                else:
                    if prepared.idempotency_key is not None:
                        first_with_key[prepared.idempotency_key] = index
                    sent[index] = prepared
            if refused and version is None and await self.store.latest_version(workflow) != deployed.version:
                self._latest.pop(workflow, None)  # refused by a version that is no longer the latest: check again
                continue
            total = sum(prepared.input_bytes for prepared in sent.values())
            if total > MAX_BATCH_INPUT_BYTES:
                raise InvalidInput(
                    f"the inputs of this batch are {total} bytes of JSON together; the limit is "
                    f"{MAX_BATCH_INPUT_BYTES}: send fewer instances per request"
                )
            if not_before is not None:
                await self.deadlines.until(not_before)
            written = await self._starts.submit(list(sent.values())) if sent else []
            for index, result in zip(sent, written, strict=True):
                if isinstance(result, Started):
                    started[index] = result
            for index, earlier in repeats.items():
                found = started.get(earlier)
                if found is not None:
                    started[index] = Started(found.id, found.status, False)
            if len(started) + len(refused) == len(items):
                return [started[index] if index in started else refused[index] for index in range(len(items))]
            # the rest were taken as the latest version while a newer one was deployed: start that one instead
            self._latest.pop(workflow, None)
        raise Conflict(f"workflow '{workflow}' was deployed again and again while starting; try again")

    async def deployed(self, name: str, version: int | None = None) -> Deployed:
        """The version of a workflow a start would use (the latest when None); NotFound when there is none."""
        check_workflow_name(name)
        return await self._deployed(name, version)

    async def _deployed(self, name: str, version: int | None) -> Deployed:
        """The version to start (the latest when None), from this service's cache when it has it."""
        if version is None:
            version = self._latest.get(name)
            if version is None:
                row = await self.get_workflow(name)
                self._latest[name] = row["version"]
                return self._remember(row)
        deployed = self._versions.get((name, version))
        if deployed is None:
            deployed = self._remember(await self.get_workflow(name, version))
        return deployed

    def _remember(self, row: Row) -> Deployed:
        key = (row["name"], row["version"])
        deployed = self._versions.get(key)
        if deployed is None:
            deployed = self._versions[key] = Deployed.from_row(row)
        return deployed

    async def get_instance(
        self, instance_id: str | uuid.UUID, *, steps_limit: int = DEFAULT_STEPS_LIMIT, logs: bool = False
    ) -> Row:
        """An instance with its children, active branches, tree of runs and why it waits.

        It lists the latest ``steps_limit`` step attempts; ``steps_total`` says how many there are. With ``logs``
        each attempt carries what its handler logged through ``ctx.logger`` (``logs``, None when nothing).
        """
        row = await self.store.get_instance(parse_instance_id(instance_id))
        if row is None:
            raise NotFound(f"instance {instance_id} does not exist")
        row["steps"], latest, runs, row["children"], interruptions = await asyncio.gather(
            self.store.list_steps(row["id"], steps_limit, logs=logs),
            self.store.latest_attempts(row["id"]),
            self.store.list_runs(row["id"]),
            self.store.list_children(row["id"]),
            self.store.list_interruptions(row["id"]),
        )
        workers = None
        if row["status"] not in ACTIVE_STATUSES:
            row["wait_reason"] = None  # what it waited for when it was cancelled
        else:
            workers = await self.live_workers()
            if row["status"] == "pending" and row["run_at"] is not None and row["run_at"] > datetime.now(UTC):
                row["wait_reason"] = starts_at_reason(row["run_at"])
            elif row["status"] == "pending" and not row["wait_reason"]:
                row["wait_reason"] = _missing_worker_reason(row["node_types"], workers, row.get("lanes"))
        definition = await self._definition(row["workflow"], row["version"])
        row.update(progress(definition, row, latest, runs, workers))
        steps_total = len(row["steps"])
        steps_total = steps_total if steps_total < steps_limit else await self.store.count_steps(row["id"])
        listed = len(row["steps"])
        row["steps"] = with_interrupted(row["steps"], interrupted_steps(interruptions))
        row["steps_total"] = steps_total + len(row["steps"]) - listed
        row["interruptions"] = lease_expiries(interruptions)
        return row

    async def _definition(self, name: str, version: int) -> WorkflowDefinition:
        return (await self._deployed(name, version)).definition

    async def cancel(self, instance_id: str | uuid.UUID, **data: Any) -> None:
        """Cancel an unfinished instance; Conflict when it already finished. ``data`` goes with its event."""
        parsed = parse_instance_id(instance_id)
        refused = await self.cancel_many([parsed], **data)
        if parsed in refused:
            raise refused[parsed]

    async def cancel_many(self, instance_ids: Sequence[uuid.UUID], **data: Any) -> Refusals:
        """Cancel the unfinished instances of ``instance_ids`` with one statement; why each other one was not."""
        cancelled = await self.store.cancel_instances(instance_ids, data)
        return await refusals(
            self.store,
            [i for i in instance_ids if i not in cancelled],
            lambda row: Conflict(f"instance {row['id']} is already {row['status']}"),
        )

    async def delete(self, instance_id: str | uuid.UUID) -> str:
        """Delete a finished instance with its steps and events; its status. Conflict while it has not finished."""
        parsed = parse_instance_id(instance_id)
        row = await self.store.delete_instance(parsed)
        if row is not None:
            return str(row["status"])
        row = await self.store.get_instance(parsed)
        if row is None:
            raise NotFound(f"instance {instance_id} does not exist")
        raise Conflict(f"instance {instance_id} is {row['status']}: cancel it first, or wait until it finishes")

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


def _missing_worker_reason(node_types: list[str], workers: list[Row], lanes: list[str] | None = None) -> str | None:
    """Why no worker takes a pending instance whose next runs need one of ``node_types``, if none can.

    ``lanes``: the queue and node type of each of those runs (``gpu:HitEndpoint``; ``*`` for any).
    """
    wanted = [node_type for node_type in node_types if node_type != ANY_WORKER]
    if not workers:
        return "no worker is running"
    if not wanted or any(
        worker.get("queues") is None and set(wanted) & set(worker["node_types"]) for worker in workers
    ):
        return None
    if not any(set(wanted) & set(worker["node_types"]) for worker in workers):
        return "no live worker has node type " + " or ".join(f"'{node_type}'" for node_type in wanted)
    pairs = [tuple(item.split(":", 1)) for item in lanes or () if ":" in item]
    if not pairs or ANY_QUEUE in (lanes or ()):
        return None
    if any(queue in (worker.get("queues") or ()) and node_type in worker["node_types"]
           for queue, node_type in pairs for worker in workers):  # fmt: skip
        return None
    queues = sorted({queue for queue, _ in pairs})
    if not any(queue in (worker.get("queues") or ()) for queue in queues for worker in workers):
        return "no live worker serves queue " + " or ".join(f"'{queue}'" for queue in queues)
    return "no live worker serving its queue has its node type: " + ", ".join(
        f"queue '{queue}' with node type '{node_type}'" for queue, node_type in sorted(set(pairs))
    )


def check_event(name: str, data: Any, event_id: str | None) -> None:
    """InvalidInput unless the event's name, data and id are acceptable."""
    if not isinstance(name, str) or not re.fullmatch(EVENT_NAME_PATTERN, name):
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


def check_workflow_name(name: str) -> None:
    """InvalidInput unless ``name`` is 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit."""
    # fullmatch: ``$`` alone also matches before a trailing newline
    if not isinstance(name, str) or not WORKFLOW_NAME.fullmatch(name):
        raise InvalidInput(f"invalid workflow name {str(name)[:140]!r}: use {WORKFLOW_NAME_RULE}")


Refusals = dict[uuid.UUID, PostgitError]
"""Why an operation left each of some instances as they were, by instance id."""


async def refusals(store: Store, instance_ids: Sequence[uuid.UUID], why: Callable[[Row], PostgitError]) -> Refusals:
    """Why an operation left each of ``instance_ids`` as it was: NotFound, or ``why`` of its current row."""
    if not instance_ids:
        return {}
    return explain_refusals(instance_ids, await store.instance_summaries(instance_ids), why)


def explain_refusals(
    instance_ids: Sequence[uuid.UUID], rows: dict[uuid.UUID, Row], why: Callable[[Row], PostgitError]
) -> Refusals:
    """Why each of ``instance_ids`` was left as it was, from ``rows`` (their current rows, by id, where they exist)."""
    return {
        instance_id: why(rows[instance_id])
        if instance_id in rows
        else NotFound(f"instance {instance_id} does not exist")
        for instance_id in instance_ids
    }


def parse_instance_id(value: str | uuid.UUID) -> uuid.UUID:
    """The instance id as a UUID; NotFound unless it is one in its usual 8-4-4-4-12 form.

    Other spellings ``uuid.UUID`` reads (braces, a ``urn:uuid:`` prefix, no hyphens) are refused too: the API's schema
    says ``format: uuid``, and a client or gateway that checks it sends only this form.
    """
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str) or not INSTANCE_ID.fullmatch(value):
        raise NotFound(f"instance {str(value)[:100]!r} does not exist (not an instance id)")
    return uuid.UUID(value)
