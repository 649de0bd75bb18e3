"""Operating instances: pause and resume them, retry failed or cancelled ones, and do either to many at once.

Retry follows Conductor's rerun and DBOS's fork: the instance resumes at the run that failed it (or re-runs from a
chosen node) with its attempts counted from 1 again, and every step that completed before is kept. Only the runs
that re-run lose their step rows to ``retired_steps``. It stays on its version unless asked for the latest.

Pause is a flag, not a status: a paused instance keeps its status (``pending``, ``running`` or ``waiting``) and no
worker claims it until it is resumed; a step running when it was paused finishes and is written.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from postgit.db.records import RetryTarget
from postgit.db.store import Row
from postgit.definition import ANY_WORKER, WorkflowDefinition
from postgit.errors import Conflict, InvalidInput
from postgit.service import (
    ACTIVE_STATUSES,
    Refusals,
    check_workflow_name,
    explain_refusals,
    parse_instance_id,
    refusals,
)

if TYPE_CHECKING:
    from postgit.service import WorkflowService

RETRYABLE_STATUSES = frozenset({"failed", "cancelled"})
BULK_ACTIONS = ("retry", "cancel", "pause", "resume")
MAX_BULK = 10_000
"""The most instances one bulk action touches; run it again for the rest."""
MAX_REASON_LENGTH = 500
MAX_BULK_ERRORS = 100
BULK_CHUNK = 500
"""The most instances of a bulk action one statement acts on."""
_ITERATION = re.compile(r"(\[\d+\])+$")


@dataclass
class BulkOutcome:
    """What a bulk action did: how many instances matched, were acted on, and why the others were not."""

    action: str
    matched: int
    done: int = 0
    skipped: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)


class InstanceOperations:
    """Pause, resume, retry and their bulk forms, on top of a :class:`WorkflowService`."""

    def __init__(self, service: WorkflowService):
        self.service = service
        self.store = service.store

    async def pause(self, instance_id: str | uuid.UUID, reason: str | None = None, **data: Any) -> Row:
        """Pause an unfinished instance; Conflict when it finished or is paused already."""
        parsed = parse_instance_id(instance_id)
        paused, refused = await self._pause([parsed], _reason(reason) or "paused", data)
        return _only(parsed, paused, refused)

    async def resume(self, instance_id: str | uuid.UUID, **data: Any) -> Row:
        """Resume a paused instance; Conflict when it is not paused."""
        parsed = parse_instance_id(instance_id)
        resumed, refused = await self._resume([parsed], data)
        return _only(parsed, resumed, refused)

    async def retry(
        self, instance_id: str | uuid.UUID, *, from_node: str | None = None, latest: bool = False, **data: Any
    ) -> Row:
        """Make a failed or cancelled instance run again from the run that failed it, or from ``from_node``.

        ``latest``: on the workflow's latest version instead of its own (the node must exist there).
        InvalidInput naming the field when the node does not exist; Conflict unless it failed or was cancelled.
        """
        parsed = parse_instance_id(instance_id)
        retried, refused = await self._retry([parsed], from_node=from_node, latest=latest, data=data)
        return _only(parsed, retried, refused)

    async def bulk(
        self,
        action: str,
        *,
        workflow: str,
        status: str,
        since: datetime | None = None,
        dry_run: bool = False,
        latest: bool = False,
    ) -> BulkOutcome:
        """Do ``action`` to every instance of ``workflow`` in ``status`` (created since ``since``), oldest first.

        ``dry_run``: only count them. An instance that changed meanwhile is skipped, with why. The instances are
        acted on :data:`BULK_CHUNK` at a time, each chunk with one statement.
        """
        check_workflow_name(workflow)
        if action not in BULK_ACTIONS:
            raise InvalidInput(f"action: {action!r} is not one of {', '.join(BULK_ACTIONS)}")
        allowed = RETRYABLE_STATUSES if action == "retry" else ACTIVE_STATUSES
        if status not in allowed:
            raise InvalidInput(
                f"status: {action} takes instances that are {' or '.join(sorted(allowed))}, not {status}"
            )
        paused = True if action == "resume" else False if action == "pause" else None
        ids = await self.store.select_instances(
            workflow=workflow, statuses=[status], since=since, paused=paused, limit=MAX_BULK
        )
        outcome = BulkOutcome(action, len(ids))
        if dry_run:
            return outcome
        data = {"bulk": True}
        for first in range(0, len(ids), BULK_CHUNK):
            chunk = ids[first : first + BULK_CHUNK]
            if action == "retry":
                refused = (await self._retry(chunk, from_node=None, latest=latest, data=data))[1]
            elif action == "cancel":
                refused = await self.service.cancel_many(chunk, **data)
            elif action == "pause":
                refused = (await self._pause(chunk, "paused", data))[1]
            else:
                refused = (await self._resume(chunk, data))[1]
            outcome.done += len(chunk) - len(refused)
            outcome.skipped += len(refused)
            for instance_id in chunk:
                if instance_id in refused and len(outcome.errors) < MAX_BULK_ERRORS:
                    outcome.errors.append({"id": str(instance_id), "error": str(refused[instance_id])})
        return outcome

    async def _pause(
        self, ids: Sequence[uuid.UUID], reason: str, data: dict[str, Any]
    ) -> tuple[dict[uuid.UUID, Row], Refusals]:
        paused = await self.store.pause_instances(ids, reason, data)
        return paused, await refusals(self.store, [i for i in ids if i not in paused], _why_not_paused)

    async def _resume(self, ids: Sequence[uuid.UUID], data: dict[str, Any]) -> tuple[dict[uuid.UUID, Row], Refusals]:
        resumed = await self.store.resume_instances(ids, data)
        return resumed, await refusals(self.store, [i for i in ids if i not in resumed], _why_not_resumed)

    async def _retry(
        self, ids: Sequence[uuid.UUID], *, from_node: str | None, latest: bool, data: dict[str, Any]
    ) -> tuple[dict[uuid.UUID, Row], Refusals]:
        """Retry ``ids`` with one statement: those retried, and why each other one was not."""
        rows = await self.store.instance_summaries(ids)
        unretryable = [i for i in ids if rows.get(i, {}).get("status") not in RETRYABLE_STATUSES]
        refused = explain_refusals(unretryable, rows, _why_not_retried)
        candidates = [i for i in ids if i not in refused]
        failed = await self.store.failed_runs(candidates) if from_node is None and candidates else {}
        latest_versions: dict[str, int | None] = {}
        targets: list[RetryTarget] = []
        targeted: list[uuid.UUID] = []
        for instance_id in candidates:
            row = rows[instance_id]
            version = row["version"]
            if latest:
                if row["workflow"] not in latest_versions:
                    latest_versions[row["workflow"]] = await self.store.latest_version(row["workflow"])
                version = latest_versions[row["workflow"]] or version
            definition = (await self.service.deployed(row["workflow"], version)).definition
            try:
                targets.append(retry_target(definition, row, version, from_node, failed.get(instance_id, []), data))
            except InvalidInput as exc:
                refused[instance_id] = exc
            else:
                targeted.append(instance_id)
        retried = await self.store.retry_instances(targets, [ANY_WORKER]) if targets else {}
        changed = [instance_id for instance_id in targeted if instance_id not in retried]
        refused.update(await refusals(self.store, changed, _why_not_retried))  # retried by someone else meanwhile
        return retried, refused


def retry_target(
    definition: WorkflowDefinition,
    row: Row,
    version: int,
    from_node: str | None,
    failed_runs: list[str],
    data: dict[str, Any],
) -> RetryTarget:
    """What retrying the instance ``row`` on ``definition`` (its ``version``) re-runs.

    From ``from_node``, or the runs in ``failed_runs``. InvalidInput naming the field when a node is not in the
    definition.
    """
    where = f"workflow '{row['workflow']}' version {version}"
    if from_node is not None:
        if from_node not in definition.nodes:
            raise InvalidInput(f"from: node {from_node!r} does not exist in {where}")
        keys: list[str] = []
        nodes, ancestors = rerun_from(definition, from_node)
    else:
        keys = sorted(failed_runs)
        failed_nodes = sorted({node_of(key) for key in keys})
        missing = [node for node in failed_nodes if node not in definition.nodes]
        if missing:
            raise InvalidInput(
                f"latest: node {missing[0]!r}, where the instance failed, does not exist in {where}: "
                "retry from a node that does (from)"
            )
        nodes = []
        ancestors = sorted({ancestor for node in failed_nodes for ancestor in ancestors_of(definition, node)})
    logged = {**data, "from": from_node, "version": version, "previous_version": row["version"], "runs": keys}
    return {
        "id": str(row["id"]),
        "version": version,
        "keys": keys,
        "nodes": nodes,
        "ancestors": ancestors,
        "timeout": definition.timeout,
        "data": logged,
    }


def _only(instance_id: uuid.UUID, done: dict[uuid.UUID, Row], refused: Refusals) -> Row:
    """The row of the one instance an operation acted on, or why it did not."""
    if instance_id in refused:
        raise refused[instance_id]
    return done[instance_id]


def _why_not_paused(row: Row) -> Conflict:
    if row["status"] not in ACTIVE_STATUSES:
        return Conflict(
            f"instance {row['id']} is {row['status']}: only a pending, running or waiting instance can be paused"
        )
    if row["paused_at"] is None:  # paused and resumed by others between the two statements
        return Conflict(f"instance {row['id']} changed while it was being paused: pause it again")
    return Conflict(f"instance {row['id']} is already paused (since {row['paused_at'].isoformat()})")


def _why_not_resumed(row: Row) -> Conflict:
    if row["status"] not in ACTIVE_STATUSES:
        return Conflict(f"instance {row['id']} is {row['status']}: only a paused instance can be resumed")
    return Conflict(f"instance {row['id']} is not paused")


def _why_not_retried(row: Row) -> Conflict:
    return Conflict(
        f"instance {row['id']} is {row['status']}: only a failed or cancelled instance can be retried "
        "(pause or cancel it first)"
    )


def node_of(run_key: str) -> str:
    """The node id of a run key (``ship[3]`` -> ``ship``)."""
    return _ITERATION.sub("", run_key)


def ancestors_of(definition: WorkflowDefinition, node_id: str) -> list[str]:
    """The control nodes above ``node_id``, nearest first."""
    found = []
    while node_id in definition.parents:
        node_id = definition.parents[node_id]
        found.append(node_id)
    return found


_TRY_ORDER = {"body": 0, "catch": 1, "finally": 2}


def rerun_from(definition: WorkflowDefinition, node_id: str) -> tuple[list[str], list[str]]:
    """What re-running from ``node_id`` re-runs, and the nodes above it.

    The node with everything below it, and whatever runs after it: the later children of each Sequence above it
    (and a Try's catch and finally after its body). Branches of a Parallel beside it are kept.
    """
    nodes = {node.id for node in definition.nodes[node_id].walk()}
    current = node_id
    for parent_id in ancestors_of(definition, node_id):
        parent = definition.nodes[parent_id]
        index = next(i for i, child in enumerate(parent.children) if child.id == current)
        if parent.type == "Sequence":
            later = parent.children[index + 1 :]
        elif parent.type == "Try":
            rank = _TRY_ORDER.get(parent.roles[index], 0)
            later = tuple(
                child
                for child, role in zip(parent.children, parent.roles, strict=True)
                if _TRY_ORDER.get(role, 0) > rank
            )
        else:
            later = ()
        for child in later:
            nodes.update(node.id for node in child.walk())
        current = parent_id
    return sorted(nodes), ancestors_of(definition, node_id)


def _reason(reason: str | None) -> str | None:
    if reason is None:
        return None
    reason = reason.strip()
    if len(reason) > MAX_REASON_LENGTH or "\x00" in reason:
        raise InvalidInput(f"reason: at most {MAX_REASON_LENGTH} characters, without NUL")
    return reason or None
