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
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from postgit.db.store import Row
from postgit.definition import ANY_WORKER, WorkflowDefinition
from postgit.errors import Conflict, InvalidInput, NotFound
from postgit.service import ACTIVE_STATUSES, check_workflow_name, parse_instance_id

if TYPE_CHECKING:
    from postgit.service import WorkflowService

RETRYABLE_STATUSES = frozenset({"failed", "cancelled"})
BULK_ACTIONS = ("retry", "cancel", "pause", "resume")
MAX_BULK = 10_000
"""The most instances one bulk action touches; run it again for the rest."""
MAX_REASON_LENGTH = 500
MAX_BULK_ERRORS = 100
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
        reason = _reason(reason) or "paused"
        row = await self.store.pause_instance(parsed, reason, data)
        if row is None:
            current = await self._instance(parsed)
            if current["status"] not in ACTIVE_STATUSES:
                raise Conflict(
                    f"instance {parsed} is {current['status']}: only a pending, running or waiting instance can be "
                    "paused"
                )
            raise Conflict(f"instance {parsed} is already paused (since {current['paused_at'].isoformat()})")
        return row

    async def resume(self, instance_id: str | uuid.UUID, **data: Any) -> Row:
        """Resume a paused instance; Conflict when it is not paused."""
        parsed = parse_instance_id(instance_id)
        row = await self.store.resume_instance(parsed, data)
        if row is None:
            current = await self._instance(parsed)
            if current["status"] not in ACTIVE_STATUSES:
                raise Conflict(f"instance {parsed} is {current['status']}: only a paused instance can be resumed")
            raise Conflict(f"instance {parsed} is not paused")
        return row

    async def retry(
        self, instance_id: str | uuid.UUID, *, from_node: str | None = None, latest: bool = False, **data: Any
    ) -> Row:
        """Make a failed or cancelled instance run again from the run that failed it, or from ``from_node``.

        ``latest``: on the workflow's latest version instead of its own (the node must exist there).
        InvalidInput naming the field when the node does not exist; Conflict unless it failed or was cancelled.
        """
        parsed = parse_instance_id(instance_id)
        row = await self._instance(parsed)
        if row["status"] not in RETRYABLE_STATUSES:
            raise Conflict(
                f"instance {parsed} is {row['status']}: only a failed or cancelled instance can be retried "
                "(pause or cancel it first)"
            )
        version = row["version"]
        if latest:
            version = await self.store.latest_version(row["workflow"]) or version
        definition = (await self.service.deployed(row["workflow"], version)).definition
        where = f"workflow '{row['workflow']}' version {version}"
        if from_node is not None:
            if from_node not in definition.nodes:
                raise InvalidInput(f"from: node {from_node!r} does not exist in {where}")
            keys: list[str] = []
            nodes, ancestors = rerun_from(definition, from_node)
        else:
            attempts = await self.store.latest_attempts(parsed)
            keys = [step["run_key"] for step in attempts if step["status"] == "failed" and step["due_at"] is None]
            failed_nodes = sorted({node_of(key) for key in keys})
            missing = [node for node in failed_nodes if node not in definition.nodes]
            if missing:
                raise InvalidInput(
                    f"latest: node {missing[0]!r}, where the instance failed, does not exist in {where}: "
                    "retry from a node that does (from)"
                )
            nodes = []
            ancestors = sorted({ancestor for node in failed_nodes for ancestor in ancestors_of(definition, node)})
        data.update({"from": from_node, "version": version, "previous_version": row["version"], "runs": keys})
        retried = await self.store.retry_instance(
            parsed,
            version=version,
            keys=keys,
            nodes=nodes,
            ancestors=ancestors,
            node_types=[ANY_WORKER],
            timeout_seconds=definition.timeout,
            data=data,
        )
        if retried is None:  # it changed in between (retried by someone else)
            current = await self._instance(parsed)
            raise Conflict(
                f"instance {parsed} is {current['status']}: only a failed or cancelled instance can be retried"
            )
        return retried

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

        ``dry_run``: only count them. An instance that changed meanwhile is skipped, with why.
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
        for instance_id in ids:
            try:
                if action == "retry":
                    await self.retry(instance_id, latest=latest, bulk=True)
                elif action == "cancel":
                    await self.service.cancel(instance_id, bulk=True)
                elif action == "pause":
                    await self.pause(instance_id, None, bulk=True)
                else:
                    await self.resume(instance_id, bulk=True)
            except (Conflict, InvalidInput, NotFound) as exc:
                outcome.skipped += 1
                if len(outcome.errors) < MAX_BULK_ERRORS:
                    outcome.errors.append({"id": str(instance_id), "error": str(exc)})
            else:
                outcome.done += 1
        return outcome

    async def _instance(self, instance_id: uuid.UUID) -> Row:
        row = await self.store.get_instance(instance_id)
        if row is None:
            raise NotFound(f"instance {instance_id} does not exist")
        return row


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
