"""``GET /health``: is the server up, and can it reach its database. Never needs a token."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Response, status

from postgit_server.dependencies import Service
from postgit_server.models import Health

router = APIRouter(tags=["health"])
log = logging.getLogger("postgit.server")

PING_TIMEOUT_SECONDS = 3.0


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "The database cannot be reached"}},
)
async def health(service: Service, response: Response) -> Health:
    """``{"status": "ok", "database": "ok"}``; 503 with the reason when the database does not answer."""
    try:
        await asyncio.wait_for(service.store.ping(), PING_TIMEOUT_SECONDS)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log.warning("health check: the database does not answer: %s", reason)
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return Health(status="unavailable", database=f"unreachable: {reason}")
    return Health(status="ok", database="ok")
