"""SendEmail: deliver through SMTP (``POSTGIT_SMTP_URL``), or park the message in the durable outbox."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from postgit import FatalError, NodeType, RetryableError, StepContext, hookimpl

_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")
SMTP_URL_VARIABLE = "POSTGIT_SMTP_URL"


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


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to deliver, parsed from ``smtp://user:pass@host:port`` (``smtps://``, ``?starttls=1``)."""

    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    username: str | None
    password: str | None

    @classmethod
    def from_url(cls, url: str) -> SmtpConfig:
        """Parse ``POSTGIT_SMTP_URL``; FatalError when it is malformed."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise FatalError(f"{SMTP_URL_VARIABLE} must look like smtp://user:pass@host:port or smtps://...")
        query = parse_qs(parts.query)
        starttls = query.get("starttls", ["0"])[0].lower() in ("1", "true", "yes")
        implicit_tls = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if implicit_tls else 587 if starttls else 25),
            implicit_tls=implicit_tls,
            starttls=starttls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


def build_message(params: SendEmailParams, idempotency_key: str) -> EmailMessage:
    """The email for a step; its Message-ID derives from the idempotency key, so a re-sent copy is recognisable."""
    message = EmailMessage()
    message["From"] = params.sender
    message["To"] = ", ".join(params.to)
    message["Subject"] = params.subject
    if params.reply_to:
        message["Reply-To"] = params.reply_to
    message["Message-ID"] = f"<{hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]}@postgit>"
    message["X-Postgit-Idempotency-Key"] = idempotency_key
    message.set_content(params.body_text())
    return message


def deliver(config: SmtpConfig, message: EmailMessage, timeout: float = 30.0) -> None:
    """Send ``message`` over SMTP (blocking)."""
    context = ssl.create_default_context()
    smtp_class = smtplib.SMTP_SSL if config.implicit_tls else smtplib.SMTP
    kwargs: dict[str, Any] = {"context": context} if config.implicit_tls else {}
    with smtp_class(config.host, config.port, timeout=timeout, **kwargs) as smtp:
        if config.starttls:
            smtp.starttls(context=context)
        if config.username:
            smtp.login(config.username, config.password or "")
        smtp.send_message(message)


async def send_email(ctx: StepContext, params: SendEmailParams) -> dict[str, Any]:
    """Deliver through SMTP when configured; otherwise store the message in the outbox."""
    message = build_message(params, ctx.idempotency_key)
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
                "message_id": message["Message-ID"],
                "instance_id": ctx.instance_id,
                "node_id": ctx.node_id,
            },
        )
        return {"delivery": "outbox", "message_id": message["Message-ID"]}
    config = SmtpConfig.from_url(smtp_url)
    try:
        await asyncio.to_thread(deliver, config, message)
    except smtplib.SMTPAuthenticationError as exc:
        raise FatalError(f"SMTP server {config.host}:{config.port} refused the credentials: {exc}") from exc
    except smtplib.SMTPRecipientsRefused as exc:
        raise FatalError(f"SMTP server refused the recipients: {sorted(exc.recipients)}") from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise RetryableError(f"SMTP delivery to {config.host}:{config.port} failed: {exc}") from exc
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
