"""Schedules: create, list, show, pause, resume, trigger, backfill and delete."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from postgit_server.audit import note
from postgit_server.auth import ADMIN, VIEWER
from postgit_server.dependencies import Schedules
from postgit_server.inputs import ScheduleName, parse_moment
from postgit_server.models import (
    BackfillRequest,
    BackfillResponse,
    ErrorBody,
    ScheduleCreate,
    ScheduleDetail,
    ScheduleSummary,
    TriggerResponse,
)

router = APIRouter(tags=["schedules"])

NOT_FOUND = {404: {"model": ErrorBody, "description": "No such schedule"}}
BAD_NAME = {400: {"model": ErrorBody, "description": "Invalid schedule name"}}


@router.post(
    "/schedules",
    dependencies=[ADMIN],
    status_code=status.HTTP_201_CREATED,
    response_model=ScheduleDetail,
    responses={
        400: {
            "model": ErrorBody,
            "description": "A cron expression that does not parse, an unknown time zone, a workflow that is not "
            "deployed, an input its input schema refuses: the detail names the field",
        },
        409: {"model": ErrorBody, "description": "A schedule of that name exists"},
    },
)
async def create_schedule(body: ScheduleCreate, schedules: Schedules, request: Request) -> ScheduleDetail:
    """Create a schedule; it fires from the first time its expression matches after now (unless paused)."""
    note(request, target=f"schedule {body.name}", workflow=body.workflow, cron=body.cron)
    row = await schedules.create(
        body.name,
        workflow=body.workflow,
        cron=body.cron,
        timezone=body.timezone,
        input=body.input,
        overlap=body.overlap.value,
        catchup_window=body.catchup_window,
        paused=body.paused,
    )
    return ScheduleDetail.model_validate(row)


@router.get("/schedules", dependencies=[VIEWER], response_model=list[ScheduleSummary])
async def list_schedules(schedules: Schedules) -> list[ScheduleSummary]:
    """Every schedule by name, with its next fire time."""
    return [ScheduleSummary.model_validate(row) for row in await schedules.list()]


@router.get(
    "/schedules/{name}", dependencies=[VIEWER], response_model=ScheduleDetail, responses={**NOT_FOUND, **BAD_NAME}
)
async def get_schedule(name: ScheduleName, schedules: Schedules) -> ScheduleDetail:
    """A schedule with its next fire times and its latest fire records."""
    return ScheduleDetail.model_validate(await schedules.get(name))


@router.post(
    "/schedules/{name}/pause", dependencies=[ADMIN], response_model=ScheduleDetail, responses={**NOT_FOUND, **BAD_NAME}
)
async def pause_schedule(name: ScheduleName, schedules: Schedules) -> ScheduleDetail:
    """Stop firing (a trigger or a backfill still starts instances)."""
    return ScheduleDetail.model_validate(await schedules.pause(name))


@router.post(
    "/schedules/{name}/resume", dependencies=[ADMIN], response_model=ScheduleDetail, responses={**NOT_FOUND, **BAD_NAME}
)
async def resume_schedule(name: ScheduleName, schedules: Schedules) -> ScheduleDetail:
    """Fire again from the next time after now; the times passed while paused are not fired."""
    return ScheduleDetail.model_validate(await schedules.resume(name))


@router.post(
    "/schedules/{name}/trigger",
    dependencies=[ADMIN],
    response_model=TriggerResponse,
    responses={
        **NOT_FOUND,
        400: {"model": ErrorBody, "description": "Invalid name, or the workflow refused the schedule's input"},
    },
)
async def trigger_schedule(name: ScheduleName, schedules: Schedules) -> TriggerResponse:
    """Start an instance now, whatever the overlap policy and even while paused."""
    return TriggerResponse.model_validate(await schedules.trigger(name))


@router.post(
    "/schedules/{name}/backfill",
    dependencies=[ADMIN],
    response_model=BackfillResponse,
    responses={
        **NOT_FOUND,
        400: {
            "model": ErrorBody,
            "description": "Invalid name; `to` before `from` or in the future; more than 1,000 times in the range",
        },
    },
)
async def backfill_schedule(name: ScheduleName, body: BackfillRequest, schedules: Schedules) -> BackfillResponse:
    """Start one instance per time the expression matches from `from` to `to`, both included.

    At most 1,000 times, whatever the overlap policy; a time fired before keeps its instance (same idempotency key).
    """
    start, end = parse_moment("from", body.start), parse_moment("to", body.end)
    return BackfillResponse.model_validate(await schedules.backfill(name, start, end))


@router.delete(
    "/schedules/{name}",
    dependencies=[ADMIN],
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**NOT_FOUND, **BAD_NAME},
)
async def delete_schedule(name: ScheduleName, schedules: Schedules) -> Response:
    """Delete a schedule and its fire records; the instances it started are left alone."""
    await schedules.delete(name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
