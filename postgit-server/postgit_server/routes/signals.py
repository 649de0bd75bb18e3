"""Events sent to instances: to one instance, or to every instance waiting on a name and key."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from postgit_server.audit import note
from postgit_server.auth import OPERATOR
from postgit_server.dependencies import Service
from postgit_server.inputs import InstanceId
from postgit_server.models import ErrorBody, EventAccepted, SendEvent, SendKeyedEvent

router = APIRouter(tags=["events"])

BAD_EVENT = {400: {"model": ErrorBody, "description": "Invalid name, data or event id"}}


@router.post(
    "/instances/{instance_id}/events",
    dependencies=[OPERATOR],
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EventAccepted,
    responses={
        **BAD_EVENT,
        404: {"model": ErrorBody, "description": "No such instance"},
        409: {"model": ErrorBody, "description": "The instance has finished"},
    },
)
async def send_instance_event(
    instance_id: InstanceId, body: SendEvent, service: Service, request: Request
) -> EventAccepted:
    """Send an event to one instance: a WaitForEvent of that name takes it, now or when its wait begins."""
    note(request, event=body.name)
    row = await service.send_event(instance_id, body.name, body.data, event_id=body.event_id)
    return EventAccepted(**row)


@router.post(
    "/events",
    dependencies=[OPERATOR],
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EventAccepted,
    responses=BAD_EVENT,
)
async def send_keyed_event(body: SendKeyedEvent, service: Service, request: Request) -> EventAccepted:
    """Send an event to every instance whose WaitForEvent waits on its name and key, now or later."""
    note(request, target=f"event key {body.key}", event=body.name)
    row = await service.send_keyed_event(body.name, body.key, body.data, event_id=body.event_id)
    return EventAccepted(**row)
