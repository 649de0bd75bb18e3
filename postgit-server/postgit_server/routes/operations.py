"""Operating instances: pause, resume and retry one, or act on many at once (every action logs an event)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request

from postgit_server.audit import note
from postgit_server.auth import OPERATOR
from postgit_server.dependencies import Operations
from postgit_server.inputs import InstanceId, parse_moment
from postgit_server.models import (
    BulkRequest,
    BulkResponse,
    ErrorBody,
    PauseRequest,
    PauseResponse,
    RetryRequest,
    RetryResponse,
)

router = APIRouter(tags=["instances"])

NOT_FOUND = {404: {"model": ErrorBody, "description": "No such instance"}}


@router.post(
    "/instances/{instance_id}/pause",
    dependencies=[OPERATOR],
    response_model=PauseResponse,
    responses={
        **NOT_FOUND,
        400: {"model": ErrorBody, "description": "A reason over 500 characters"},
        409: {"model": ErrorBody, "description": "The instance has finished, or is paused already"},
    },
)
async def pause_instance(
    instance_id: InstanceId, operations: Operations, body: Annotated[PauseRequest | None, Body()] = None
) -> PauseResponse:
    """Pause an unfinished instance: no worker takes it until it is resumed; a step running now finishes.

    Its status stays what it is (`pending`, `running`, `waiting`); `paused` and `paused_at` say it is paused.
    """
    row = await operations.pause(instance_id, body.reason if body else None)
    return PauseResponse(id=row["id"], status=row["status"], paused=True)


@router.post(
    "/instances/{instance_id}/resume",
    dependencies=[OPERATOR],
    response_model=PauseResponse,
    responses={**NOT_FOUND, 409: {"model": ErrorBody, "description": "The instance is not paused"}},
)
async def resume_instance(instance_id: InstanceId, operations: Operations) -> PauseResponse:
    """Resume a paused instance: it runs again as soon as it is due."""
    row = await operations.resume(instance_id)
    return PauseResponse(id=row["id"], status=row["status"], paused=False)


@router.post(
    "/instances/{instance_id}/retry",
    dependencies=[OPERATOR],
    response_model=RetryResponse,
    responses={
        **NOT_FOUND,
        400: {
            "model": ErrorBody,
            "description": "`from` names no node of the version it would run; with `latest`, the node where it "
            "failed is not in the latest version",
        },
        409: {"model": ErrorBody, "description": "The instance is not failed or cancelled"},
    },
)
async def retry_instance(
    instance_id: InstanceId, operations: Operations, body: Annotated[RetryRequest | None, Body()] = None
) -> RetryResponse:
    """Run a failed or cancelled instance again, from the run that failed it or from the node `from`.

    The runs that re-run start again at attempt 1; every step completed before them is kept. It stays on its
    version unless `latest`.
    """
    body = body or RetryRequest()
    row = await operations.retry(instance_id, from_node=body.from_node, latest=body.latest)
    return RetryResponse.model_validate(row)


@router.post(
    "/bulk/instances",
    dependencies=[OPERATOR],
    response_model=BulkResponse,
    responses={
        400: {
            "model": ErrorBody,
            "description": "An invalid workflow name or time; a status the action does not take",
        },
    },
)
async def bulk_action(body: BulkRequest, operations: Operations, request: Request) -> BulkResponse:
    """Retry, cancel, pause or resume every instance of a workflow in a status (created since `since`).

    Oldest first, at most 10,000 per request; `dry_run` only counts them. An instance that changed meanwhile is
    skipped and listed in `errors`.
    """
    note(
        request,
        target=f"workflow {body.workflow}",
        bulk=str(body.action),
        status=str(body.status),
        dry_run=bool(body.dry_run),
    )
    since = parse_moment("since", body.since) if body.since is not None else None
    outcome = await operations.bulk(
        body.action.value,
        workflow=body.workflow,
        status=body.status.value,
        since=since,
        dry_run=body.dry_run,
        latest=body.latest,
    )
    return BulkResponse.model_validate({**vars(outcome), "dry_run": body.dry_run})
