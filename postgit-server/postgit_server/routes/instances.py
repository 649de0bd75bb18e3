"""Instances: start one or many, list them, show one with its steps, cancel one, delete a finished one.

Pausing, resuming and retrying them, one at a time or in bulk, are in :mod:`postgit_server.routes.operations`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response, status

from postgit.db.store import dumps
from postgit.errors import InvalidInput
from postgit.service import (
    DEFAULT_STEPS_LIMIT,
    MAX_STEPS_LIMIT,
    check_workflow_name,
    parse_instance_id,
)
from postgit.starts import Started, StartItem
from postgit_server.audit import note
from postgit_server.auth import ADMIN, OPERATOR, VIEWER
from postgit_server.dependencies import Service
from postgit_server.inputs import (
    IdempotencyKeyHeader,
    InstanceId,
    TraceparentHeader,
    WorkflowFilter,
    WorkflowName,
    parse_moment,
)
from postgit_server.models import (
    BatchStartRequest,
    BatchStartResponse,
    CancelResponse,
    ErrorBody,
    InstanceDetail,
    InstancePage,
    InstanceStatus,
    InstanceSummary,
    StartRequest,
    StartResponse,
    Step,
    ValidationErrorBody,
)

router = APIRouter(tags=["instances"])

JSON = "application/json"
MAX_OFFSET = 2**62
NOT_FOUND = {404: {"model": ErrorBody, "description": "No such instance"}}


@router.post(
    "/workflows/{name}/instances",
    dependencies=[OPERATOR],
    status_code=status.HTTP_201_CREATED,
    response_model=StartResponse,
    responses={
        200: {"model": StartResponse, "description": "The idempotency key was used before: the same instance"},
        400: {"model": ErrorBody, "description": "Invalid name, input or idempotency key"},
        404: {"model": ErrorBody, "description": "No such workflow or version"},
    },
)
async def start_instance(
    name: WorkflowName,
    service: Service,
    request: Request,
    body: Annotated[StartRequest | None, Body()] = None,
    idempotency_key: IdempotencyKeyHeader = None,
    traceparent: TraceparentHeader = None,
) -> Response:
    """Start an instance of a workflow (its latest version unless `version` is given)."""
    body = body or StartRequest()
    key = body.idempotency_key
    if idempotency_key is not None:
        if key is not None and key != idempotency_key:
            raise InvalidInput("the Idempotency-Key header and the body's idempotency_key differ")
        key = idempotency_key
    start_at = parse_moment("start_at", body.start_at) if body.start_at is not None else None
    row, created = await service.start(
        name,
        body.input,
        idempotency_key=key,
        version=body.version,
        traceparent=traceparent,
        start_at=start_at,
        priority=body.priority,
    )
    note(request, instance=str(row["id"]), created=created)
    # the hot path: encoded here, once, rather than validated against StartResponse again and then encoded
    started: dict[str, Any] = {"id": str(row["id"]), "status": row["status"], "workflow": name, "created": created}
    warnings = await service.start_warnings(name, body.version)
    if warnings:
        started["warnings"] = list(warnings)
    content = dumps(started)
    return Response(content, status_code=status.HTTP_201_CREATED if created else status.HTTP_200_OK, media_type=JSON)


@router.post(
    "/workflows/{name}/instances/batch",
    dependencies=[OPERATOR],
    response_model=BatchStartResponse,
    responses={
        400: {"model": ErrorBody, "description": "Invalid workflow name, or items' inputs over 32 MB of JSON together"},
        404: {"model": ErrorBody, "description": "No such workflow or version"},
        422: {
            "model": ValidationErrorBody,
            "description": "Not a batch (malformed JSON, a missing or unknown field, more than 1,000 instances, "
            "an idempotency key of more than 200 characters)",
        },
    },
)
async def start_batch(
    name: WorkflowName,
    body: BatchStartRequest,
    service: Service,
    traceparent: TraceparentHeader = None,
) -> Response:
    """Start up to 1,000 instances of a workflow at once; the outcome of each item, in the request's order.

    Each item starts as one start would. An item that cannot start (its input fails the workflow's input schema,
    is over 1 MB, or holds what JSON or PostgreSQL cannot store) gets an `error` naming the field, and the others
    start; an item whose idempotency key was used before, by an earlier start or an earlier item of the batch,
    gets that instance with `created: false`. The instances are written by one statement: when the database
    fails, none is.
    """
    start_at = parse_moment("start_at", body.start_at) if body.start_at is not None else None
    items = [
        StartItem(
            item.input,
            item.idempotency_key,
            traceparent=traceparent,
            start_at=start_at,
            priority=item.priority if item.priority is not None else body.priority,
        )
        for item in body.instances
    ]
    outcomes = await service.start_many(name, items, version=body.version)
    results = []
    counts = {"started": 0, "existing": 0, "failed": 0}
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, Started):
            counts["started" if outcome.created else "existing"] += 1
            results.append(
                {"index": index, "id": str(outcome.id), "status": outcome.status, "created": outcome.created,
                 "error": None}
            )  # fmt: skip
        else:
            counts["failed"] += 1
            results.append({"index": index, "id": None, "status": None, "created": None, "error": str(outcome)})
    batch: dict[str, Any] = {"workflow": name, **counts, "results": results}
    warnings = await service.start_warnings(name, body.version) if counts["started"] else ()
    if warnings:
        batch["warnings"] = list(warnings)
    return Response(dumps(batch), media_type=JSON)


@router.get(
    "/instances",
    dependencies=[VIEWER],
    response_model=InstancePage,
    responses={400: {"model": ErrorBody, "description": "Invalid workflow name"}},
)
async def list_instances(
    service: Service,
    status_filter: Annotated[
        InstanceStatus | None, Query(alias="status", description="Only instances in this status")
    ] = None,
    workflow: WorkflowFilter = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> InstancePage:
    """Instances newest first, a page at a time; `next_offset` is null on the last page."""
    if workflow is not None:
        check_workflow_name(workflow)
    rows = await service.store.list_instances(
        status=status_filter.value if status_filter else None, workflow=workflow, limit=limit + 1, offset=offset
    )
    more = len(rows) > limit
    return InstancePage(
        items=[InstanceSummary.model_validate(row) for row in rows[:limit]],
        limit=limit,
        offset=offset,
        next_offset=offset + limit if more else None,
    )


@router.get("/instances/{instance_id}", dependencies=[VIEWER], response_model=InstanceDetail, responses=NOT_FOUND)
async def get_instance(
    instance_id: InstanceId,
    service: Service,
    steps_limit: Annotated[
        int,
        Query(ge=0, le=MAX_STEPS_LIMIT, description="List at most this many step attempts, the latest ones"),
    ] = DEFAULT_STEPS_LIMIT,
    logs: Annotated[
        bool, Query(description="Give each step attempt its `logs`: what its handler logged through `ctx.logger`")
    ] = False,
) -> InstanceDetail:
    """An instance with its state, its branches and tree of runs, and its latest step attempts (with their logs)."""
    row = await service.get_instance(instance_id, steps_limit=steps_limit, logs=logs)
    return InstanceDetail.model_validate({**row, "steps": [_step(step) for step in row["steps"]]})


@router.post(
    "/instances/{instance_id}/cancel",
    dependencies=[OPERATOR],
    response_model=CancelResponse,
    responses={**NOT_FOUND, 409: {"model": ErrorBody, "description": "The instance already finished"}},
)
async def cancel_instance(instance_id: InstanceId, service: Service) -> CancelResponse:
    """Cancel an instance that has not finished; a step running now has its result discarded."""
    await service.cancel(instance_id)
    return CancelResponse(id=parse_instance_id(instance_id), status=InstanceStatus.cancelled)


@router.delete(
    "/instances/{instance_id}",
    dependencies=[ADMIN],
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**NOT_FOUND, 409: {"model": ErrorBody, "description": "The instance has not finished"}},
)
async def delete_instance(instance_id: InstanceId, service: Service) -> Response:
    """Delete a finished instance with its steps and events (retention does this once it is old enough)."""
    await service.delete(instance_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _step(row: dict[str, Any]) -> Step:
    finished, started = row["finished_at"], row["started_at"]
    duration = (finished - started).total_seconds() * 1000 if finished and started else None
    return Step.model_validate({**row, "duration_ms": round(duration, 3) if duration is not None else None})
