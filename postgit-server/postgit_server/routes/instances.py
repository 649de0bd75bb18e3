"""Instances: start one, list them, show one with its steps, cancel one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Response, status

from postgit.errors import InvalidInput
from postgit.service import DEFAULT_STEPS_LIMIT, MAX_STEPS_LIMIT, check_workflow_name, parse_instance_id
from postgit_server.dependencies import Service
from postgit_server.models import (
    CancelResponse,
    ErrorBody,
    InstanceDetail,
    InstancePage,
    InstanceStatus,
    InstanceSummary,
    StartRequest,
    StartResponse,
    Step,
)

router = APIRouter(tags=["instances"])

MAX_OFFSET = 2**62
NOT_FOUND = {404: {"model": ErrorBody, "description": "No such instance"}}


@router.post(
    "/workflows/{name}/instances",
    status_code=status.HTTP_201_CREATED,
    response_model=StartResponse,
    responses={
        200: {"model": StartResponse, "description": "The idempotency key was used before: the same instance"},
        400: {"model": ErrorBody, "description": "Invalid name, input or idempotency key"},
        404: {"model": ErrorBody, "description": "No such workflow or version"},
    },
)
async def start_instance(
    name: str,
    service: Service,
    response: Response,
    body: Annotated[StartRequest | None, Body()] = None,
    idempotency_key: Annotated[str | None, Header(description="Same as the body's idempotency_key")] = None,
) -> StartResponse:
    """Start an instance of a workflow (its latest version unless `version` is given)."""
    body = body or StartRequest()
    key = body.idempotency_key
    if idempotency_key is not None:
        if key is not None and key != idempotency_key:
            raise InvalidInput("the Idempotency-Key header and the body's idempotency_key differ")
        key = idempotency_key
    row, created = await service.start(name, body.input, idempotency_key=key, version=body.version)
    if not created:
        response.status_code = status.HTTP_200_OK
    return StartResponse(id=row["id"], status=row["status"], workflow=name, created=created)


@router.get(
    "/instances",
    response_model=InstancePage,
    responses={400: {"model": ErrorBody, "description": "Invalid workflow name"}},
)
async def list_instances(
    service: Service,
    status_filter: Annotated[
        InstanceStatus | None, Query(alias="status", description="Only instances in this status")
    ] = None,
    workflow: Annotated[str | None, Query(description="Only instances of this workflow")] = None,
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


@router.get("/instances/{instance_id}", response_model=InstanceDetail, responses=NOT_FOUND)
async def get_instance(
    instance_id: str,
    service: Service,
    steps_limit: Annotated[
        int,
        Query(ge=0, le=MAX_STEPS_LIMIT, description="List at most this many step attempts, the latest ones"),
    ] = DEFAULT_STEPS_LIMIT,
) -> InstanceDetail:
    """An instance with its state, its branches and tree of runs, and its latest step attempts."""
    row = await service.get_instance(instance_id, steps_limit=steps_limit)
    return InstanceDetail.model_validate({**row, "steps": [_step(step) for step in row["steps"]]})


@router.post(
    "/instances/{instance_id}/cancel",
    response_model=CancelResponse,
    responses={**NOT_FOUND, 409: {"model": ErrorBody, "description": "The instance already finished"}},
)
async def cancel_instance(instance_id: str, service: Service) -> CancelResponse:
    """Cancel an instance that has not finished; a step running now has its result discarded."""
    await service.cancel(instance_id)
    return CancelResponse(id=parse_instance_id(instance_id), status=InstanceStatus.cancelled)


def _step(row: dict[str, Any]) -> Step:
    finished, started = row["finished_at"], row["started_at"]
    duration = (finished - started).total_seconds() * 1000 if finished and started else None
    return Step.model_validate({**row, "duration_ms": round(duration, 3) if duration is not None else None})
