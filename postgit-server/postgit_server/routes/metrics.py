"""``GET /metrics``: Prometheus metrics, in the text exposition format."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from postgit_server.auth import VIEWER

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    dependencies=[VIEWER],
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text format: this server's metrics and what the database tells "
            "(instances by status, the oldest due instance's age, live workers); without the database's series, "
            "and `postgit_database_up 0`, when it does not answer in time",
            "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
        }
    },
)
async def metrics(request: Request) -> Response:
    """Metrics for Prometheus to scrape; answers even when the database does not."""
    body = await request.app.state.metrics.exposition()
    return Response(body, media_type=CONTENT_TYPE_LATEST)
