"""Sending mail parked in the outbox, once an SMTP server is configured.

``SendEmail`` parks a message when its worker has no ``POSTGIT_SMTP_URL``. :class:`OutboxSender` sends parked
messages later through the SMTP server it is given: each message is taken for sending in the database first, so two
requests (or two servers) never send it at once, and a sent message is never sent again; its delivery (when, through
which server) or its last failure is recorded on its row. A process that stops between handing a message to the
SMTP server and recording it leaves the message taken; after :data:`STALE_SENDING_SECONDS` it may be sent again,
with the same ``Message-ID`` (derived from the step's idempotency key), so the copy is recognisable as the same
message.
"""

from __future__ import annotations

import asyncio
import smtplib
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from postgit.db.store import Row, Store
from postgit.errors import Conflict, NotFound, PostgitError
from postgit.mail import SMTP_URL_VARIABLE, SmtpConfig, build_email, deliver, delivery_failure

STALE_SENDING_SECONDS = 300.0
"""How long a message taken for sending stays taken when whoever took it never recorded the outcome."""
MAX_SEND_BATCH = 500
NO_SMTP = (
    f"no SMTP server is configured: set {SMTP_URL_VARIABLE} (smtp://user:pass@host:port) where postgit-server runs, "
    "and restart it, to send the mail parked in the outbox"
)


class DeliveryFailed(PostgitError):
    """The SMTP server could not be reached or did not accept the message; it stays parked."""


@dataclass
class SendOutcome:
    """What became of one message.

    ``status``: ``sent`` now, ``already_sent`` before, ``failed`` (``error`` says why; it stays parked), or ``busy``
    (another request is sending it).
    """

    id: int
    status: str
    message: Row = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "error": self.error,
            "message_id": (self.message.get("message") or {}).get("message_id"),
            "sent_at": self.message.get("sent_at"),
            "sent_via": self.message.get("sent_via"),
        }


class OutboxSender:
    """Sends parked messages through ``config`` (None: no SMTP server is configured, and sending is refused)."""

    def __init__(self, store: Store, config: SmtpConfig | None):
        self.store = store
        self.config = config

    def _smtp(self) -> SmtpConfig:
        if self.config is None:
            raise Conflict(NO_SMTP)
        return self.config

    async def send(self, message_id: int) -> SendOutcome:
        """Send one parked message; ``already_sent`` when it was sent before (it is not sent again).

        Raises:
            Conflict: no SMTP server is configured, or another request is sending the message now.
            NotFound: there is no such message.
            DeliveryFailed: the SMTP server refused it or could not be reached (recorded; it stays parked).
        """
        outcome = await self._send(self._smtp(), message_id)
        if outcome.status == "failed":
            raise DeliveryFailed(f"outbox message {message_id} was not sent: {outcome.error}")
        return outcome

    async def send_all(self, after_id: int = 0, limit: int = 100) -> tuple[list[SendOutcome], int | None]:
        """Send up to ``limit`` parked messages after ``after_id``, oldest first, one after the other.

        A message that fails is recorded and the others are sent. Returns the outcomes, and the id to continue
        after (None when no parked message is left after these).
        """
        config = self._smtp()
        ids = await self.store.parked_outbox_ids(after_id, min(limit, MAX_SEND_BATCH) + 1)
        more = len(ids) > limit
        ids = ids[:limit]
        outcomes = []
        for message_id in ids:
            try:
                outcomes.append(await self._send(config, message_id))
            except Conflict as exc:  # another request is sending it
                outcomes.append(SendOutcome(message_id, "busy", error=str(exc)))
            except NotFound:  # deleted meanwhile
                continue
        return outcomes, (ids[-1] if more else None)

    async def _send(self, config: SmtpConfig, message_id: int) -> SendOutcome:
        taken = await self.store.take_outbox_message(message_id, STALE_SENDING_SECONDS)
        if taken is None:
            row = await self.store.get_outbox_message(message_id)
            if row is None:
                raise NotFound(f"outbox message {message_id} does not exist")
            if row["sent_at"] is not None:
                return SendOutcome(message_id, "already_sent", row)
            raise Conflict(f"outbox message {message_id} is being sent by another request; try again in a minute")
        try:
            await asyncio.to_thread(deliver, config, _email(taken))
        except (smtplib.SMTPException, OSError) as exc:
            reason = delivery_failure(config, exc)[0]
        except ValueError as exc:  # a header the email package refuses to write
            reason = f"the message cannot be sent as it is: {exc}"
        else:
            row = await self.store.record_outbox_sent(message_id, config.where)
            return SendOutcome(message_id, "sent", row or taken)
        row = await self.store.record_outbox_failure(message_id, reason)
        return SendOutcome(message_id, "failed", row or taken, reason)


def _email(row: Row) -> EmailMessage:
    """The email of a parked message, as its step would have sent it (the same ``Message-ID``)."""
    message = row["message"] if isinstance(row["message"], dict) else {}
    to = message.get("to")
    return build_email(
        sender=str(message.get("from") or "postgit@localhost"),
        to=[str(address) for address in to] if isinstance(to, list) else [str(to)],
        subject=str(message.get("subject") or ""),
        body=str(message.get("body") or ""),
        reply_to=message.get("reply_to"),
        idempotency_key=row["idempotency_key"],
    )
