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


async def test_seed_example_runs_end_to_end(service, store, route, http_server, smtp_server, tmp_path):
    controller, mailbox = smtp_server
    await service.deploy("seed", seed_workflow(http_server.url).to_json())
    row, _ = await service.start("seed", {"user": "ada"})
    smtp_url = f"smtp://{controller.hostname}:{controller.port}"
    with running_workers(route.url, tmp_path, POSTGIT_SMTP_URL=smtp_url, **route.env):
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


def test_without_smtp_mail_goes_to_the_outbox(postgit_env, http_server, monkeypatch):
    # the testing kit's engine: the fetch is real, the ten seconds of Sleep are skipped
    monkeypatch.delenv("POSTGIT_SMTP_URL", raising=False)
    instance = postgit_env.run(seed_workflow(http_server.url, seconds=10), {}, name="seed")
    assert instance.status == "completed", instance.error
    assert len(http_server.hits("/ok/health")) == 1
    [message] = postgit_env.outbox()
    assert message["to"] == ["user@example.com"]
    assert message["body"] == "ok"
    assert (message["instance_id"], message["node_id"]) == (instance.id, "notify")
