"""``GET /outbox``: email parked because no SMTP server is configured."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from postgit_server.dependencies import Service
from postgit_server.models import OutboxMessage

router = APIRouter(tags=["outbox"])


@router.get("/outbox", response_model=list[OutboxMessage])
async def list_outbox(service: Service, limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[OutboxMessage]:
    """Parked messages, oldest first."""
    return [OutboxMessage.model_validate(row) for row in await service.store.list_outbox(limit)]
