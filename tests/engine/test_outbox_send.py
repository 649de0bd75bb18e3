"""OutboxSender: parked mail is sent once, however many senders go at it at once, with its step's Message-ID."""

from __future__ import annotations

import asyncio

import pytest

from postgit.errors import Conflict, NotFound
from postgit.mail import SmtpConfig, message_id
from postgit.outbox import DeliveryFailed, OutboxSender
from tests.support.ports import free_port


async def park(store, count: int) -> list[int]:
    for n in range(count):
        key = f"0190:mail[{n}]"
        message = {"from": "postgit@localhost", "to": [f"user{n}@example.com"], "subject": f"n{n}", "body": "hi"}
        await store.enqueue_mail(idempotency_key=key, message={**message, "message_id": message_id(key)})
    return [row["id"] for row in await store.list_outbox()]


async def test_concurrent_senders_send_each_message_once(store, smtp_server):
    controller, mailbox = smtp_server
    ids = await park(store, 12)
    config = SmtpConfig.from_url(f"smtp://127.0.0.1:{controller.port}")
    senders = [OutboxSender(store, config) for _ in range(3)]
    rounds = await asyncio.gather(*(sender.send_all(limit=5) for sender in senders))
    assert sorted(message["Subject"] for message in mailbox.messages) == sorted({f"n{n}" for n in range(5)})
    assert len({message["Message-ID"] for message in mailbox.messages}) == len(mailbox.messages) == 5
    outcomes = [outcome for outcomes, _ in rounds for outcome in outcomes]
    assert sum(outcome.status == "sent" for outcome in outcomes) == 5
    assert {outcome.status for outcome in outcomes} <= {"sent", "already_sent", "busy"}
    assert {next_after for _, next_after in rounds} == {ids[4]}

    outcomes, next_after = await senders[1].send_all(after_id=ids[4], limit=100)
    assert [outcome.status for outcome in outcomes] == ["sent"] * 7 and next_after is None
    assert len(mailbox.messages) == 12
    assert (await senders[2].send(ids[11])).status == "already_sent"
    assert await senders[2].send_all() == ([], None)
    assert len(mailbox.messages) == 12
    sent = await store.list_outbox(which="sent")
    assert [row["id"] for row in sent] == ids
    assert all(row["sent_via"] == f"smtp://127.0.0.1:{controller.port}" and row["attempts"] == 1 for row in sent)
    by_subject = {message["Subject"]: message for message in mailbox.messages}
    assert by_subject["n3"]["Message-ID"] == message_id("0190:mail[3]")


async def test_without_smtp_or_with_a_dead_one_nothing_is_lost(store):
    [parked] = await park(store, 1)
    with pytest.raises(Conflict, match="no SMTP server is configured"):
        await OutboxSender(store, None).send(parked)
    with pytest.raises(Conflict, match="no SMTP server is configured"):
        await OutboxSender(store, None).send_all()
    dead = OutboxSender(store, SmtpConfig.from_url(f"smtp://127.0.0.1:{free_port()}"))
    with pytest.raises(DeliveryFailed, match=f"outbox message {parked} was not sent: SMTP delivery to"):
        await dead.send(parked)
    with pytest.raises(NotFound):
        await dead.send(parked + 1000)
    [row] = await store.list_outbox()
    assert (row["sent_at"], row["attempts"]) == (None, 1)
    assert "SMTP delivery to" in row["last_error"]
