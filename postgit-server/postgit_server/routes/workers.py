"""``GET /workers``: the workers whose heartbeat is recent."""

from __future__ import annotations

from fastapi import APIRouter

from postgit_server.auth import VIEWER
from postgit_server.dependencies import Service
from postgit_server.models import WorkerRow

router = APIRouter(tags=["workers"])


@router.get("/workers", dependencies=[VIEWER], response_model=list[WorkerRow])
async def list_workers(service: Service) -> list[WorkerRow]:
    """Live workers, by id, with the node types each can run and the queues it serves."""
    return [WorkerRow.model_validate(row) for row in await service.live_workers()]
