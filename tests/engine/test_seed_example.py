"""The seed's example end to end: a real worker process, a loopback HTTP server and a loopback SMTP server."""

from __future__ import annotations

from postgit import HitEndpoint, SendEmail, Sequence, Sleep, ref
from tests.support.engine import wait_finished
from tests.support.processes import running_workers


def seed_workflow(base_url: str, seconds: float = 1):
    return Sequence(
        id="root",
        children=[
            HitEndpoint(id="fetch-data", url=f"{base_url}/ok/health", assign_to="$.fetchResult"),
            Sleep(id="wait", seconds=seconds),
            SendEmail(
                id="notify", to="user@example.com", subject="Workflow Complete", body=ref("$.fetchResult.body.status")
            ),
        ],
    )


async def test_seed_example_runs_end_to_end(service, store, database_url, http_server, smtp_server, tmp_path):
    controller, mailbox = smtp_server
    await service.deploy("seed", seed_workflow(http_server.url).to_json())
    row, _ = await service.start("seed", {"user": "ada"})
    smtp_url = f"smtp://{controller.hostname}:{controller.port}"
    with running_workers(database_url, tmp_path, POSTGIT_SMTP_URL=smtp_url):
        instance = await wait_finished(store, row["id"])
    assert instance["status"] == "completed", instance["error"]
    assert instance["state"]["fetchResult"]["status"] == 200
    assert instance["state"]["fetchResult"]["body"]["status"] == "ok"

    hits = http_server.hits("/ok/health")
    assert len(hits) == 1
    assert hits[0].headers["Idempotency-Key"] == f"{row['id']}:fetch-data"

    assert len(mailbox.messages) == 1
    message = mailbox.messages[0]
    assert message["Subject"] == "Workflow Complete"
    assert message["To"] == "user@example.com"
    assert message.get_payload().strip() == "ok"

    steps = await store.list_steps(row["id"])
    assert [(s["node_id"], s["status"]) for s in steps] == [
        ("fetch-data", "completed"),
        ("wait", "completed"),
        ("notify", "completed"),
    ]
    wait_step = steps[1]
    assert (wait_step["finished_at"] - wait_step["started_at"]).total_seconds() >= 1


async def test_without_smtp_mail_goes_to_the_outbox(service, store, database_url, http_server, tmp_path):
    await service.deploy("seed", seed_workflow(http_server.url, seconds=0).to_json())
    row, _ = await service.start("seed", {})
    with running_workers(database_url, tmp_path):
        instance = await wait_finished(store, row["id"])
    assert instance["status"] == "completed", instance["error"]
    outbox = await store.list_outbox()
    assert len(outbox) == 1
    assert outbox[0]["message"]["to"] == ["user@example.com"]
    assert outbox[0]["message"]["body"] == "ok"
    assert outbox[0]["idempotency_key"] == f"{row['id']}:notify"
