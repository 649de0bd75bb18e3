"""The outbox: email parked because no SMTP server was configured, and sending it once one is."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query

from postgit_server.auth import OPERATOR, VIEWER
from postgit_server.dependencies import Outbox, Service
from postgit_server.inputs import OutboxMessageId
from postgit_server.models import (
    ErrorBody,
    OutboxDelivery,
    OutboxMessage,
    OutboxSendRequest,
    OutboxSendResponse,
)

router = APIRouter(tags=["outbox"])

SEND_ALL_ERRORS = {
    400: {"model": ErrorBody, "description": "The body is not JSON text"},
    409: {"model": ErrorBody, "description": "The server has no POSTGIT_SMTP_URL, so it cannot send mail"},
}


@router.get("/outbox", dependencies=[VIEWER], response_model=list[OutboxMessage])
async def list_outbox(
    service: Service,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    which: Annotated[
        Literal["parked", "sent", "all"],
        Query(alias="status", description="parked (not sent yet), sent, or all"),
    ] = "parked",
) -> list[OutboxMessage]:
    """Messages oldest first: by default the parked ones, not sent yet."""
    return [OutboxMessage.model_validate(row) for row in await service.store.list_outbox(limit, which)]


@router.post(
    "/outbox/{message_id}/send",
    dependencies=[OPERATOR],
    response_model=OutboxDelivery,
    responses={
        404: {"model": ErrorBody, "description": "No such message"},
        409: {
            "model": ErrorBody,
            "description": "The server has no POSTGIT_SMTP_URL, or another request is sending the message now",
        },
        502: {"model": ErrorBody, "description": "The SMTP server refused the message or could not be reached"},
    },
)
async def send_outbox_message(message_id: OutboxMessageId, outbox: Outbox) -> OutboxDelivery:
    """Send one parked message through the server's POSTGIT_SMTP_URL, once.

    A message sent before is not sent again (`already_sent`). Its delivery, or the failure, is recorded.
    """
    outcome = await outbox.send(message_id)
    return OutboxDelivery.model_validate(outcome.as_dict())


@router.post("/outbox/send", dependencies=[OPERATOR], response_model=OutboxSendResponse, responses=SEND_ALL_ERRORS)
async def send_outbox(outbox: Outbox, body: Annotated[OutboxSendRequest | None, Body()] = None) -> OutboxSendResponse:
    """Send the parked messages, oldest first, up to `limit` per request, each once, through POSTGIT_SMTP_URL.

    A message that fails is recorded and stays parked, and the others are sent. When more parked messages follow,
    `next_after_id` says where to go on.
    """
    body = body or OutboxSendRequest()
    outcomes, next_after_id = await outbox.send_all(body.after_id, body.limit)
    counts = {
        status: sum(1 for o in outcomes if o.status == status) for status in ("sent", "already_sent", "failed", "busy")
    }
    return OutboxSendResponse(
        **counts,
        results=[OutboxDelivery.model_validate(outcome.as_dict()) for outcome in outcomes],
        next_after_id=next_after_id,
    )
