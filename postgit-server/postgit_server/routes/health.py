"""``GET /health``: is the server up, and can it reach its database. Never needs a token."""

from __future__ import annotations

import psycopg
from fastapi import APIRouter, Request, Response, status

from postgit_server.database import unavailable_reason
from postgit_server.dependencies import Service
from postgit_server.models import Health

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "The database cannot be reached, or does not answer in time"}},
)
async def health(service: Service, request: Request, response: Response) -> Health:
    """``{"status": "ok", "database": "ok"}``; 503 with the reason when the database does not answer.

    Answers within ``POSTGIT_DB_TIMEOUT_SECONDS`` or so: the time to get a connection and a round trip are each
    bounded by it.
    """
    try:
        await service.store.ping()
    except psycopg.OperationalError as exc:
        reason = unavailable_reason(exc, request.app.state.database, request.app.state.settings)
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return Health(status="unavailable", database=f"unreachable: {reason}")
    return Health(status="ok", database="ok")
