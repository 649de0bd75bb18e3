"""Delayed starts, pause, resume, retry and bulk actions through the API (no worker), and their bad input: 4xx with
one line naming the field, nothing written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.server.conftest import deploy, sequence, shout, start

MISSING = "00000000-0000-0000-0000-000000000000"


async def test_a_delayed_start_and_a_delayed_batch_are_pending_until_their_time(client):
    await deploy(client, "greet")
    at = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    started = await start(client, "greet", start_at=at.isoformat().replace("+00:00", "Z"))
    assert started["status"] == "pending"
    shown = (await client.get(f"/instances/{started['id']}")).json()
    assert shown["wait_reason"] == f"starts at {at.isoformat()}"
    assert shown["paused"] is False
    batch = await client.post(
        "/workflows/greet/instances/batch", json={"instances": [{}, {}], "start_at": "2999-01-01T00:00:00+02:00"}
    )
    assert batch.status_code == 200, batch.text
    for result in batch.json()["results"]:
        detail = (await client.get(f"/instances/{result['id']}")).json()
        assert detail["wait_reason"] == "starts at 2998-12-31T22:00:00+00:00"

    for bad in ("tomorrow", "2026-12-01T09:00:00", 5):
        response = await client.post("/workflows/greet/instances", json={"start_at": bad})
        assert response.status_code == 422, response.text
        assert "start_at" in response.text
    response = await client.post("/workflows/greet/instances", json={"start_at": "2026-13-45T09:00:00Z"})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("start_at: '2026-13-45T09:00:00Z' is not a valid time")
    listed = (await client.get("/instances")).json()["items"]
    assert len(listed) == 3, "nothing written for a refused start"


async def test_pause_resume_and_their_conflicts(client):
    await deploy(client, "greet")
    instance = await start(client, "greet", start_at="2999-01-01T00:00:00Z")
    paused = await client.post(f"/instances/{instance['id']}/pause", json={"reason": "a bad deploy"})
    assert paused.status_code == 200, paused.text
    assert paused.json() == {"id": instance["id"], "status": "pending", "paused": True}
    shown = (await client.get(f"/instances/{instance['id']}")).json()
    assert shown["paused"] is True and shown["pause_reason"] == "a bad deploy" and shown["paused_at"]
    listed = (await client.get("/instances")).json()["items"][0]
    assert listed["paused"] is True
    again = await client.post(f"/instances/{instance['id']}/pause")
    assert again.status_code == 409 and "already paused" in again.json()["detail"]
    resumed = await client.post(f"/instances/{instance['id']}/resume")
    assert resumed.json() == {"id": instance["id"], "status": "pending", "paused": False}
    not_paused = await client.post(f"/instances/{instance['id']}/resume")
    assert not_paused.status_code == 409 and not_paused.json()["detail"].endswith("is not paused")
    await client.post(f"/instances/{instance['id']}/cancel")
    finished = await client.post(f"/instances/{instance['id']}/pause")
    assert finished.status_code == 409
    assert "is cancelled: only a pending, running or waiting instance can be paused" in finished.json()["detail"]
    too_long = await client.post(f"/instances/{instance['id']}/pause", json={"reason": "x" * 501})
    assert too_long.status_code == 422
    assert (await client.post(f"/instances/{MISSING}/pause")).status_code == 404


async def test_retry_names_the_node_that_does_not_exist_and_refuses_unfinished_instances(client):
    await deploy(client, "greet", sequence(shout("a"), shout("b")))
    instance = await start(client, "greet", start_at="2999-01-01T00:00:00Z")
    running = await client.post(f"/instances/{instance['id']}/retry")
    assert running.status_code == 409
    assert "is pending: only a failed or cancelled instance can be retried" in running.json()["detail"]
    await client.post(f"/instances/{instance['id']}/cancel")
    missing = await client.post(f"/instances/{instance['id']}/retry", json={"from": "nope"})
    assert missing.status_code == 400
    assert missing.json()["detail"] == "from: node 'nope' does not exist in workflow 'greet' version 1"
    assert (await client.get(f"/instances/{instance['id']}")).json()["status"] == "cancelled", "nothing written"
    retried = await client.post(f"/instances/{instance['id']}/retry", json={"from": "b", "latest": True})
    assert retried.status_code == 200, retried.text
    assert retried.json() == {"id": instance["id"], "status": "pending", "version": 1, "retry": 1, "steps_retired": 0}
    shown = (await client.get(f"/instances/{instance['id']}")).json()
    assert (shown["status"], shown["retries"], shown["paused"]) == ("pending", 1, False)
    unknown = await client.post(f"/instances/{instance['id']}/retry", json={"frm": "b"})
    assert unknown.status_code == 422


async def test_bulk_counts_then_acts_and_refuses_a_status_the_action_does_not_take(client):
    await deploy(client, "greet")
    ids = [(await start(client, "greet", start_at="2999-01-01T00:00:00Z"))["id"] for _ in range(3)]
    body = {"action": "pause", "workflow": "greet", "status": "pending"}
    counted = (await client.post("/bulk/instances", json={**body, "dry_run": True})).json()
    assert counted == {"action": "pause", "dry_run": True, "matched": 3, "done": 0, "skipped": 0, "errors": []}
    done = (await client.post("/bulk/instances", json=body)).json()
    assert (done["matched"], done["done"]) == (3, 3)
    assert [(await client.get(f"/instances/{i}")).json()["paused"] for i in ids] == [True, True, True]
    none = (await client.post("/bulk/instances", json={**body, "since": "2999-01-01T00:00:00Z"})).json()
    assert none["matched"] == 0
    wrong = await client.post("/bulk/instances", json={**body, "action": "retry"})
    assert wrong.status_code == 400
    assert wrong.json()["detail"] == "status: retry takes instances that are cancelled or failed, not pending"
    for bad in ({**body, "action": "explode"}, {**body, "status": "asleep"}, {**body, "workflow": "../x"}):
        response = await client.post("/bulk/instances", json=bad)
        assert response.status_code in (400, 422), response.text


async def test_the_timeout_counts_from_the_start_time_and_again_from_a_retry(client):
    await deploy(client, "timed", {"root": shout(), "timeout": 60})
    instance = await start(client, "timed", start_at="2999-01-01T00:00:00Z")
    shown = (await client.get(f"/instances/{instance['id']}")).json()
    assert datetime.fromisoformat(shown["deadline_at"]) == datetime(2999, 1, 1, 0, 1, tzinfo=UTC)
    await client.post(f"/instances/{instance['id']}/cancel")
    before = datetime.now(UTC)
    await client.post(f"/instances/{instance['id']}/retry")
    retried = (await client.get(f"/instances/{instance['id']}")).json()
    assert datetime.fromisoformat(retried["deadline_at"]) >= before + timedelta(seconds=59)
