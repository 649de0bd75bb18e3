"""Starting instances: each input checked and encoded once, and many starts written by one statement.

A start is prepared in Python (its input encoded to JSON once, checked against the limits and the workflow's input
schema, its first runs decided) and then written by the ``start_instances`` statement, which inserts any number of
instances, logs their creation and wakes the workers with one NOTIFY. :class:`StartQueue` gathers the starts that
arrive while earlier ones are being written into the next statement, as a worker's group commit gathers steps: an
idle server writes a start at once, a busy one writes many per round trip.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jsonschema
import referencing
import referencing.exceptions

from postgit.db.ids import uuid7
from postgit.db.store import Store, dumps
from postgit.decider import Decider
from postgit.definition import ANY_QUEUE, ANY_WORKER, WorkflowDefinition, lane
from postgit.gathering import GatheredWriter
from postgit.jsontext import Unstorable, storable_json
from postgit.runs import RunView
from postgit.templating import TemplateProblem, render_template
from postgit.tracing import valid_traceparent

MAX_INPUT_BYTES = 1_000_000
MAX_IDEMPOTENCY_KEY_LENGTH = 200
MAX_CONCURRENCY_KEY_BYTES = 1_000
"""The longest a concurrency key may render to."""
DEFAULT_PRIORITY = 3
MIN_PRIORITY, MAX_PRIORITY = 1, 5
"""A start's priority: 1 is claimed first, 5 last."""
MAX_STATEMENT_ITEMS = 1_000
"""The most instances one ``start_instances`` statement writes (a batch request of that size is one statement)."""
MAX_STATEMENTS_IN_FLIGHT = 2
"""Statements a :class:`StartQueue` has running at once; starts arriving meanwhile wait for the next one."""

_NO_REMOTE_SCHEMAS: referencing.Registry[Any] = referencing.Registry()
"""Input schemas resolve ``$ref`` inside themselves only: a start never fetches a schema from the network."""


@dataclass(frozen=True)
class ItemError:
    """Why one start was refused: the field (``input.order_id``, ``idempotency_key``) and the problem."""

    field: str
    problem: str

    def __str__(self) -> str:
        return f"{self.field}: {self.problem}"


@dataclass(frozen=True)
class StartItem:
    """One instance to start: its input, its idempotency key, and its parent when a SubWorkflow starts it.

    ``parent``: (instance id, run key, cancel with the parent). ``traceparent``: the W3C trace context of the
    request that starts it; its steps' spans are children of it.
    """

    input: Any = None
    idempotency_key: str | None = None
    parent: tuple[uuid.UUID, str, bool] | None = None
    traceparent: str | None = None
    start_at: datetime | None = None
    """When it may start (a delayed start); None or a past time: at once."""
    priority: int | None = None
    """1 (claimed first) to 5 (last); None: :data:`DEFAULT_PRIORITY`."""


@dataclass(frozen=True)
class Deployed:
    """One version of a workflow, ready to start instances of: its definition, decider and input validator."""

    name: str
    version: int
    definition: WorkflowDefinition
    decider: Decider = field(repr=False)
    validator: Any = field(repr=False)
    plugins: dict[str, Any] = field(default_factory=dict, repr=False)
    """The package and version of each node type the deploy validated it against (empty when not recorded)."""

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Deployed:
        definition = WorkflowDefinition.from_json(row["definition"])
        schema = definition.input_schema
        validator = None
        if schema is not None:
            validator = jsonschema.validators.validator_for(schema)(schema, registry=_NO_REMOTE_SCHEMAS)
        plugins = row.get("plugins") or {}
        return cls(row["name"], row["version"], definition, Decider(definition), validator, plugins)

    def check_input(self, input: Any) -> ItemError | None:
        """The first way ``input`` fails the workflow's input schema, naming the field; None when it satisfies it."""
        if self.validator is None:
            return None
        try:
            error = jsonschema.exceptions.best_match(self.validator.iter_errors(input))
        except (RecursionError, referencing.exceptions.Unresolvable) as exc:
            # a schema that refers to itself without end, or to what it does not hold: the input cannot be checked
            problem = "it refers to itself without end" if isinstance(exc, RecursionError) else str(exc)
            return ItemError("input", f"the workflow's input schema cannot check this input: {problem}")
        if error is None:
            return None
        where = "input" + "".join(f"[{part!r}]" if isinstance(part, int) else f".{part}" for part in error.path)
        return ItemError(where, f"{error.message} (the workflow's input schema)")


@dataclass(frozen=True, slots=True)
class NewInstance:
    """A prepared start: what the statement inserts for it. ``state`` is JSON text, encoded once."""

    id: uuid.UUID
    workflow: str
    version: int
    latest: bool
    state: str
    input_bytes: int
    current_node: str | None
    node_types: list[str]
    lanes: list[str]
    idempotency_key: str | None
    timeout: float | None
    parent: tuple[uuid.UUID, str, bool] | None
    traceparent: str | None = None
    start_at: datetime | None = None
    priority: int = 3
    concurrency: tuple[str, int, str] | None = None
    """(rendered key, limit, strategy) when the workflow declares a concurrency key."""

    def as_json(self) -> str:
        """This start as one object of the statement's ``jsonb_to_recordset`` input; the state is spliced in."""
        fields: dict[str, Any] = {
            "id": str(self.id),
            "workflow": self.workflow,
            "version": self.version,
            "latest": self.latest,
            "current_node": self.current_node,
            "node_types": self.node_types,
            "lanes": self.lanes,
            "idempotency_key": self.idempotency_key,
            "timeout": self.timeout,
        }
        if self.traceparent is not None:
            fields["traceparent"] = self.traceparent
        if self.priority != DEFAULT_PRIORITY:
            fields["priority"] = self.priority
        if self.concurrency is not None:
            key, limit, strategy = self.concurrency
            fields.update(concurrency_key=key, concurrency_limit=limit, concurrency_strategy=strategy)
        if self.start_at is not None:
            fields.update(start_at=self.start_at.isoformat(), wait_reason=starts_at_reason(self.start_at))
        if self.parent is not None:
            parent_id, run_key, cancel_with_parent = self.parent
            fields.update(parent_id=str(parent_id), parent_run_key=run_key, cancel_with_parent=cancel_with_parent)
        head = dumps(fields)
        return f'{head[:-1]},"state":{self.state}}}'


@dataclass(frozen=True, slots=True)
class Started:
    """A started instance, or the one an idempotency key had started before (``created`` False)."""

    id: uuid.UUID
    status: str
    created: bool


STALE = object()
"""The outcome of a start taken as its workflow's latest version when a newer one had been deployed meanwhile."""


def starts_at_reason(start_at: datetime) -> str:
    """The reason a delayed start gives while it waits for its start time."""
    return f"starts at {start_at.astimezone(UTC).isoformat()}"


def check_idempotency_key(key: str | None) -> ItemError | None:
    """Why ``key`` cannot be an idempotency key, or None when it can (None is no key)."""
    if key is None:
        return None
    if not 0 < len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
        return ItemError("idempotency_key", f"must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters")
    if "\x00" in key:
        return ItemError("idempotency_key", "holds a NUL character (\\u0000), which PostgreSQL cannot store")
    return None


def encode_input(input: Any) -> tuple[str, int] | ItemError:
    """``input`` as compact JSON text and its size in bytes, or why it cannot be stored (too large, not JSON)."""
    try:
        text, size = storable_json(input)
    except Unstorable as exc:
        return ItemError("input", str(exc))
    if size > MAX_INPUT_BYTES:
        return ItemError("input", f"is {size} bytes of JSON; the limit is {MAX_INPUT_BYTES}")
    return text, size


def check_priority(priority: Any) -> ItemError | None:
    """Why ``priority`` cannot be a start's priority, or None when it can (None is the default)."""
    if priority is None:
        return None
    if isinstance(priority, bool) or not isinstance(priority, int) or not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        return ItemError("priority", f"must be a whole number from {MIN_PRIORITY} (first) to {MAX_PRIORITY} (last)")
    return None


def concurrency_key(deployed: Deployed, input: Any) -> tuple[str, int, str] | ItemError | None:
    """The (key, limit, strategy) a start of ``deployed`` with ``input`` takes a slot of; None without a key."""
    concurrency = deployed.definition.concurrency
    if concurrency is None:
        return None
    try:
        key = render_template(concurrency.key, {"input": input})
    except TemplateProblem as exc:
        return ItemError("concurrency.key", f"{exc} (the workflow's concurrency key, over this input)")
    if not key:
        return ItemError("concurrency.key", "renders to an empty key for this input")
    if "\x00" in key:
        return ItemError("concurrency.key", "renders to a key with a NUL character (\\u0000) for this input")
    if len(key.encode()) > MAX_CONCURRENCY_KEY_BYTES:
        return ItemError("concurrency.key", f"renders to more than {MAX_CONCURRENCY_KEY_BYTES} bytes for this input")
    return key, concurrency.limit, concurrency.strategy


def prepare(deployed: Deployed, item: StartItem, latest: bool, now: datetime) -> NewInstance | ItemError:
    """Check and encode one start of ``deployed``, and decide the runs it starts with."""
    problem = check_idempotency_key(item.idempotency_key) or check_priority(item.priority)
    if problem is not None:
        return problem
    encoded = encode_input(item.input)
    if isinstance(encoded, ItemError):
        return encoded
    text, size = encoded
    problem = deployed.check_input(item.input)
    if problem is not None:
        return problem
    concurrency = concurrency_key(deployed, item.input)
    if isinstance(concurrency, ItemError):
        return concurrency
    plan = deployed.decider.decide(RunView({"input": item.input}), now)
    return NewInstance(
        id=uuid7(),
        workflow=deployed.name,
        version=deployed.version,
        latest=latest,
        state=f'{{"input":{text}}}',
        input_bytes=size,
        current_node=plan.ready[0].node.id if plan.ready else None,
        node_types=sorted({run.node.type for run in plan.ready}) or [ANY_WORKER],
        lanes=sorted({lane(deployed.definition.queue_of(run.node), run.node.type) for run in plan.ready})
        or [ANY_QUEUE],
        idempotency_key=item.idempotency_key,
        timeout=deployed.definition.timeout,
        parent=item.parent,
        traceparent=valid_traceparent(item.traceparent),
        start_at=item.start_at if item.start_at is not None and item.start_at > now else None,
        priority=item.priority if item.priority is not None else DEFAULT_PRIORITY,
        concurrency=concurrency,
    )


async def write_starts(store: Store, items: Sequence[NewInstance]) -> dict[uuid.UUID, Started | object]:
    """Write ``items`` with one statement; each item's outcome by its id: :class:`Started`, or :data:`STALE`.

    An item whose idempotency key an instance holds gets that instance. When the statement cannot see it (it was
    started by another transaction meanwhile, or by another item of this statement), a second query finds it.
    """
    rows = await _start_instances(store, items)
    outcomes: dict[uuid.UUID, Started | object] = {}
    by_key: dict[str, Started] = {}
    for row in rows:
        kind = row["outcome"]
        if kind == "created":
            outcomes[row["id"]] = Started(row["id"], row["status"], True)
        elif kind == "existing":
            by_key[row["idempotency_key"]] = Started(row["id"], row["status"], False)
        elif kind == "stale":
            outcomes[row["id"]] = STALE
    unresolved = [item for item in items if item.id not in outcomes]
    missing = sorted({item.idempotency_key for item in unresolved if item.idempotency_key not in by_key} - {None})
    if missing:
        for row in await store.instances_by_keys(missing):  # type: ignore[arg-type]
            by_key[row["idempotency_key"]] = Started(row["id"], row["status"], False)
    retry = []
    for item in unresolved:
        found = by_key.get(item.idempotency_key) if item.idempotency_key is not None else None
        if found is not None:
            outcomes[item.id] = found
        else:  # the instance holding its key was deleted in between: start it again
            retry.append(item)
    if retry:
        outcomes.update(await write_starts(store, retry))
    return outcomes


async def _start_instances(store: Store, items: Sequence[NewInstance]) -> list[Any]:
    """The ``start_instances`` statement for ``items``, with their concurrency keys taken in one order.

    Each start with a key locks its key until the transaction ends (see migration 0014): taking them sorted keeps
    two statements from waiting on each other; a deadlock with a worker's commit (which PostgreSQL ends by
    rolling one of them back) is run again by the store.
    """
    if any(item.concurrency is not None for item in items):
        # a stable sort: the starts of one key keep their order, which is the order they get slots in
        items = sorted(items, key=lambda item: (item.workflow, item.concurrency[0]) if item.concurrency else ("", ""))
    return await store.start_instances(items)


class StartQueue(GatheredWriter[NewInstance, "Started | object"]):
    """Writes starts with as few statements as the load allows (see :class:`GatheredWriter`).

    Up to :data:`MAX_STATEMENT_ITEMS` instances share a statement, and :data:`MAX_STATEMENTS_IN_FLIGHT` statements
    run at once. An item's outcome is :class:`Started`, or :data:`STALE` (see :func:`write_starts`).
    """

    def __init__(self, store: Store):
        async def write(items: list[NewInstance]) -> list[Started | object]:
            outcomes = await write_starts(store, items)
            return [outcomes[item.id] for item in items]

        super().__init__(write, max_items=MAX_STATEMENT_ITEMS, max_in_flight=MAX_STATEMENTS_IN_FLIGHT)
