"""SendEmail: deliver through SMTP (``POSTGIT_SMTP_URL``), or park the message in the durable outbox."""

from __future__ import annotations

import asyncio
import json
import os
import re
import smtplib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from postgit import FatalError, NodeType, RetryableError, StepContext, hookimpl
from postgit.mail import SMTP_URL_VARIABLE, SmtpConfig, SmtpUrlError, build_email, deliver, delivery_failure

_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


class SendEmailParams(BaseModel):
    """Params of a SendEmail node."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    to: list[str] = Field(min_length=1, max_length=100)
    subject: str = Field(max_length=998)
    body: Any
    sender: str = Field(default="postgit@localhost", alias="from")
    reply_to: str | None = None

    @field_validator("to", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("to")
    @classmethod
    def _addresses(cls, addresses: list[str]) -> list[str]:
        for address in addresses:
            if not _ADDRESS.match(address):
                raise ValueError(f"'{address}' is not an email address")
        return addresses

    def body_text(self) -> str:
        """The body as text: strings as they are, anything else as JSON."""
        return self.body if isinstance(self.body, str) else json.dumps(self.body, indent=2)


async def send_email(ctx: StepContext, params: SendEmailParams) -> dict[str, Any]:
    """Deliver through SMTP when configured; otherwise store the message in the outbox."""
    message = build_email(
        sender=params.sender,
        to=params.to,
        subject=params.subject,
        body=params.body_text(),
        reply_to=params.reply_to,
        idempotency_key=ctx.idempotency_key,
    )
    smtp_url = os.environ.get(SMTP_URL_VARIABLE)
    if not smtp_url:
        if ctx.outbox is None:
            raise FatalError(f"{SMTP_URL_VARIABLE} is not set and this worker has no outbox")
        await ctx.outbox.enqueue_mail(
            idempotency_key=ctx.idempotency_key,
            message={
                "from": params.sender,
                "to": params.to,
                "subject": params.subject,
                "body": params.body_text(),
                "reply_to": params.reply_to,
                "message_id": message["Message-ID"],
                "instance_id": ctx.instance_id,
                "node_id": ctx.node_id,
            },
        )
        return {"delivery": "outbox", "message_id": message["Message-ID"]}
    try:
        config = SmtpConfig.from_url(smtp_url)
    except SmtpUrlError as exc:
        raise FatalError(str(exc)) from None
    try:
        await asyncio.to_thread(deliver, config, message)
    except (smtplib.SMTPException, OSError) as exc:
        reason, retryable = delivery_failure(config, exc)
        raise (RetryableError if retryable else FatalError)(reason) from exc
    return {"delivery": "smtp", "message_id": message["Message-ID"]}


@hookimpl
def postgit_node_types() -> list[NodeType]:
    """The node type this module provides."""
    return [
        NodeType(
            name="SendEmail",
            params=SendEmailParams,
            handler=send_email,
            description="Send an email over SMTP, or to the durable outbox when no SMTP server is configured",
        )
    ]
