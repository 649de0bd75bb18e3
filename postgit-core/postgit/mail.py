"""Email over SMTP: where to deliver (``POSTGIT_SMTP_URL``), the message a step sends, and delivering it.

The built-in ``SendEmail`` node type uses it on workers, and the server when it sends mail parked in the outbox
(``POST /outbox/send``): both read the same variable, and build the same message, whose ``Message-ID`` derives from
the step's idempotency key, so a message delivered twice is recognisable as one.
"""

from __future__ import annotations

import hashlib
import os
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

SMTP_URL_VARIABLE = "POSTGIT_SMTP_URL"
SMTP_TIMEOUT_SECONDS = 30.0


class SmtpUrlError(ValueError):
    """``POSTGIT_SMTP_URL`` is not an ``smtp://`` or ``smtps://`` URL with a host."""


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
        """Parse ``POSTGIT_SMTP_URL``; SmtpUrlError when it is malformed."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise SmtpUrlError(f"{SMTP_URL_VARIABLE} is not a valid URL: {exc}") from None
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise SmtpUrlError(f"{SMTP_URL_VARIABLE} must look like smtp://user:pass@host:port or smtps://...")
        query = parse_qs(parts.query)
        starttls = query.get("starttls", ["0"])[0].lower() in ("1", "true", "yes")
        implicit_tls = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=port or (465 if implicit_tls else 587 if starttls else 25),
            implicit_tls=implicit_tls,
            starttls=starttls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    @classmethod
    def from_env(cls) -> SmtpConfig | None:
        """``POSTGIT_SMTP_URL`` parsed, or None when it is not set (mail then goes to the outbox)."""
        url = os.environ.get(SMTP_URL_VARIABLE, "").strip()
        return cls.from_url(url) if url else None

    @property
    def where(self) -> str:
        """``smtp://host:port`` (or ``smtps://``), without the credentials: what a delivery records."""
        return f"{'smtps' if self.implicit_tls else 'smtp'}://{self.host}:{self.port}"


def message_id(idempotency_key: str) -> str:
    """The ``Message-ID`` of the message a step sends: derived from its idempotency key, the same every time."""
    return f"<{hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]}@postgit>"


def build_email(
    *, sender: str, to: list[str], subject: str, body: str, reply_to: str | None, idempotency_key: str
) -> EmailMessage:
    """The email a step sends, with its ``Message-ID`` and an ``X-Postgit-Idempotency-Key`` header."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    if reply_to:
        message["Reply-To"] = reply_to
    message["Message-ID"] = message_id(idempotency_key)
    message["X-Postgit-Idempotency-Key"] = idempotency_key
    message.set_content(body)
    return message


def deliver(config: SmtpConfig, message: EmailMessage, timeout: float = SMTP_TIMEOUT_SECONDS) -> None:
    """Send ``message`` over SMTP (blocking); raises smtplib's errors or OSError when it is not accepted."""
    context = ssl.create_default_context()
    smtp_class = smtplib.SMTP_SSL if config.implicit_tls else smtplib.SMTP
    kwargs: dict[str, Any] = {"context": context} if config.implicit_tls else {}
    with smtp_class(config.host, config.port, timeout=timeout, **kwargs) as smtp:
        if config.starttls:
            smtp.starttls(context=context)
        if config.username:
            smtp.login(config.username, config.password or "")
        smtp.send_message(message)


def delivery_failure(config: SmtpConfig, exc: Exception) -> tuple[str, bool]:
    """Why a delivery failed, in one line, and whether trying again later may help (False: fix something first)."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return f"SMTP server {config.host}:{config.port} refused the credentials: {exc}", False
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return f"SMTP server refused the recipients: {sorted(exc.recipients)}", False
    return f"SMTP delivery to {config.host}:{config.port} failed: {exc}", True
