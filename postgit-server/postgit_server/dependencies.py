"""Dependencies the routes declare: the workflow service and the settings.

All ``async``: FastAPI runs a plain ``def`` dependency in a thread pool, a thread hop per request for nothing.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, Request

from postgit.operations import InstanceOperations
from postgit.outbox import OutboxSender
from postgit.schedules import ScheduleService
from postgit.service import WorkflowService
from postgit_server.settings import ServerSettings


async def get_service(request: Request) -> WorkflowService:
    """The application's :class:`WorkflowService` (built by the lifespan)."""
    return request.app.state.service


async def get_operations(request: Request) -> InstanceOperations:
    """Pause, resume and retry, on the application's :class:`WorkflowService`."""
    return InstanceOperations(request.app.state.service)


async def get_outbox(request: Request) -> OutboxSender:
    """The application's :class:`OutboxSender` (built by the lifespan)."""
    return request.app.state.outbox


async def get_schedules(request: Request) -> ScheduleService:
    """The application's :class:`ScheduleService` (built by the lifespan)."""
    return request.app.state.schedules


async def get_settings(request: Request) -> ServerSettings:
    """The settings the application was created with."""
    return request.app.state.settings


async def get_stopping(request: Request) -> asyncio.Event:
    """Set when the server begins to shut down: long-lived responses end early."""
    return request.app.state.stopping


Service = Annotated[WorkflowService, Depends(get_service)]
Operations = Annotated[InstanceOperations, Depends(get_operations)]
Outbox = Annotated[OutboxSender, Depends(get_outbox)]
Schedules = Annotated[ScheduleService, Depends(get_schedules)]
Settings = Annotated[ServerSettings, Depends(get_settings)]
Stopping = Annotated[asyncio.Event, Depends(get_stopping)]
