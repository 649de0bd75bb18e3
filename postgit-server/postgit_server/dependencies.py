"""Dependencies the routes declare: the workflow service and the settings."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, Request

from postgit.service import WorkflowService
from postgit_server.settings import ServerSettings


def get_service(request: Request) -> WorkflowService:
    """The application's :class:`WorkflowService` (built by the lifespan)."""
    return request.app.state.service


def get_settings(request: Request) -> ServerSettings:
    """The settings the application was created with."""
    return request.app.state.settings


def get_stopping(request: Request) -> asyncio.Event:
    """Set when the server begins to shut down: long-lived responses end early."""
    return request.app.state.stopping


Service = Annotated[WorkflowService, Depends(get_service)]
Settings = Annotated[ServerSettings, Depends(get_settings)]
Stopping = Annotated[asyncio.Event, Depends(get_stopping)]
