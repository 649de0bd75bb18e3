"""Starting, listing, showing, cancelling and deleting instances."""

from __future__ import annotations

import uuid

from tests.server.conftest import deploy, sequence, shout, start

STATUSES = ["pending", "running", "waiting", "completed", "failed", "cancelled"]


async def test_start_an_instance(client):
    await deploy(client, "greet")
    response = await client.post("/workflows/greet/instances", json={"input": {"name": "ada"}})
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "pending"
    assert body["workflow"] == "greet"
    assert body["created"] is True
    uuid.UUID(body["id"])

    shown = (await client.get(f"/instances/{body['id']}")).json()
    assert shown["state"] == {"input": {"name": "ada"}}
    assert shown["version"] == 1
    assert shown["current_node"] == "shout"
    assert shown["node_type"] == "Shout"


async def test_start_without_a_body_runs_with_null_input(client):
    await deploy(client, "greet")
    response = await client.post("/workflows/greet/instances")
    assert response.status_code == 201
    shown = (await client.get(f"/instances/{response.json()['id']}")).json()
    assert shown["state"] == {"input": None}


async def test_start_is_idempotent_by_key_in_body_or_header(client):
    await deploy(client, "greet")
    first = await client.post("/workflows/greet/instances", json={"input": 1, "idempotency_key": "order-7"})
    assert first.status_code == 201
    again = await client.post("/workflows/greet/instances", json={"input": 2, "idempotency_key": "order-7"})
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["created"] is False

    by_header = await client.post(
        "/workflows/greet/instances", json={"input": 3}, headers={"Idempotency-Key": "order-7"}
    )
    assert by_header.status_code == 200
    assert by_header.json()["id"] == first.json()["id"]

    other = await client.post("/workflows/greet/instances", headers={"Idempotency-Key": "order-8"})
    assert other.status_code == 201
    assert other.json()["id"] != first.json()["id"]

    page = (await client.get("/instances")).json()
    assert len(page["items"]) == 2


async def test_header_and_body_keys_must_agree(client):
    await deploy(client, "greet")
    response = await client.post(
        "/workflows/greet/instances", json={"idempotency_key": "a"}, headers={"Idempotency-Key": "b"}
    )
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["detail"]


async def test_start_a_chosen_version(client):
    await deploy(client, "flow", shout("one"))
    await deploy(client, "flow", shout("two"))
    latest = await start(client, "flow")
    pinned = await start(client, "flow", version=1)
    assert (await client.get(f"/instances/{latest['id']}")).json()["version"] == 2
    shown = (await client.get(f"/instances/{pinned['id']}")).json()
    assert shown["version"] == 1
    assert shown["current_node"] == "one"
    missing = await client.post("/workflows/flow/instances", json={"version": 3})
    assert missing.status_code == 404
    assert "version 3" in missing.json()["detail"]


async def test_unknown_workflow_is_404(client):
    response = await client.post("/workflows/nope/instances", json={})
    assert response.status_code == 404
    assert "nope" in response.json()["detail"]


async def test_instance_detail_has_every_field_and_the_wait_reason(client, store):
    await deploy(client, "greet")
    started = await start(client, "greet")
    shown = (await client.get(f"/instances/{started['id']}")).json()
    assert set(shown) == {
        "id",
        "workflow",
        "version",
        "status",
        "state",
        "current_node",
        "node_type",
        "attempt",
        "error",
        "wait_reason",
        "created_at",
        "updated_at",
        "finished_at",
        "paused",
        "paused_at",
        "pause_reason",
        "retries",
        "priority",
        "concurrency_key",
        "holds_slot",
        "steps",
        "deadline_at",
        "parent_id",
        "parent_run_key",
        "branches",
        "tree",
        "children",
        "steps_total",
        "interruptions",
    }
    assert shown["id"] == started["id"]
    assert shown["attempt"] == 1
    assert shown["steps"] == []
    assert shown["finished_at"] is None
    assert shown["wait_reason"] == "no worker is running"

    await store.register_worker("w-http-only", ["HitEndpoint"])
    shown = (await client.get(f"/instances/{started['id']}")).json()
    assert shown["wait_reason"] == "no live worker has node type 'Shout'"

    await store.register_worker("w-shout", ["Shout"])
    shown = (await client.get(f"/instances/{started['id']}")).json()
    assert shown["wait_reason"] is None


async def test_steps_are_listed_with_durations(client, database_url, tmp_path):
    from tests.support.processes import running_workers
    from tests.support.waiting import wait_for

    await deploy(client, "two", sequence(shout("a", "x"), shout("b", "y")))
    started = await start(client, "two")

    async def completed():
        shown = (await client.get(f"/instances/{started['id']}")).json()
        return shown if shown["status"] == "completed" else None

    with running_workers(database_url, tmp_path):
        shown = await wait_for(completed, timeout=30, what="the instance to complete")
    assert shown["state"]["input"] is None
    assert shown["finished_at"] is not None
    assert [(s["node_id"], s["status"], s["attempt"]) for s in shown["steps"]] == [
        ("a", "completed", 1),
        ("b", "completed", 1),
    ]
    step = shown["steps"][0]
    assert step["output"] == {"text": "X!"}
    assert step["params"] == {"text": "x", "exclamations": 1}
    assert step["worker_id"]
    assert step["duration_ms"] >= 0
    assert set(step) == {
        "run_key",
        "due_at",
        "wait_event",
        "wait_key",
        "node_id",
        "attempt",
        "status",
        "params",
        "output",
        "error",
        "worker_id",
        "started_at",
        "finished_at",
        "duration_ms",
        "logs",
    }
    assert step["logs"] is None, "logs only with ?logs=true"


async def test_unknown_or_malformed_instance_id_is_404(client):
    for instance_id in [str(uuid.uuid4()), "not-a-uuid", "1234", "%00", "x" * 2000]:
        response = await client.get(f"/instances/{instance_id}")
        assert response.status_code == 404, instance_id
        assert "does not exist" in response.json()["detail"]


async def test_cancel(client):
    await deploy(client, "greet")
    started = await start(client, "greet")
    response = await client.post(f"/instances/{started['id']}/cancel")
    assert response.status_code == 200
    assert response.json() == {"id": started["id"], "status": "cancelled"}
    shown = (await client.get(f"/instances/{started['id']}")).json()
    assert shown["status"] == "cancelled"
    assert shown["finished_at"] is not None

    again = await client.post(f"/instances/{started['id']}/cancel")
    assert again.status_code == 409
    assert "cancelled" in again.json()["detail"]

    assert (await client.post(f"/instances/{uuid.uuid4()}/cancel")).status_code == 404
    assert (await client.post("/instances/garbage/cancel")).status_code == 404


async def test_delete_a_finished_instance(client):
    await deploy(client, "greet")
    started = await start(client, "greet")
    unfinished = await client.delete(f"/instances/{started['id']}")
    assert unfinished.status_code == 409
    assert (
        unfinished.json()["detail"]
        == f"instance {started['id']} is pending: cancel it first, or wait until it finishes"
    )
    assert (await client.get(f"/instances/{started['id']}")).status_code == 200, "a refused delete deletes nothing"

    await client.post(f"/instances/{started['id']}/cancel")
    deleted = await client.delete(f"/instances/{started['id']}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert (await client.get(f"/instances/{started['id']}")).status_code == 404
    assert (await client.get(f"/instances/{started['id']}/events")).status_code == 404
    assert (await client.delete(f"/instances/{started['id']}")).status_code == 404
    assert (await client.delete("/instances/garbage")).status_code == 404


async def test_list_pages_newest_first(client):
    await deploy(client, "greet")
    ids = [(await start(client, "greet", input=i))["id"] for i in range(5)]
    newest_first = list(reversed(ids))

    first = (await client.get("/instances", params={"limit": 2})).json()
    assert [item["id"] for item in first["items"]] == newest_first[:2]
    assert (first["limit"], first["offset"], first["next_offset"]) == (2, 0, 2)

    second = (await client.get("/instances", params={"limit": 2, "offset": first["next_offset"]})).json()
    assert [item["id"] for item in second["items"]] == newest_first[2:4]
    assert second["next_offset"] == 4

    last = (await client.get("/instances", params={"limit": 2, "offset": 4})).json()
    assert [item["id"] for item in last["items"]] == newest_first[4:]
    assert last["next_offset"] is None

    exact = (await client.get("/instances", params={"limit": 5})).json()
    assert len(exact["items"]) == 5
    assert exact["next_offset"] is None

    default = (await client.get("/instances")).json()
    assert default["limit"] == 50
    assert default["offset"] == 0
    item = default["items"][0]
    assert set(item) == {
        "id",
        "parent_id",
        "workflow",
        "version",
        "status",
        "current_node",
        "node_type",
        "attempt",
        "error",
        "wait_reason",
        "paused",
        "paused_at",
        "pause_reason",
        "created_at",
        "updated_at",
        "finished_at",
    }


async def test_list_filters_by_status_and_workflow(client):
    await deploy(client, "alpha")
    await deploy(client, "beta")
    a1 = await start(client, "alpha")
    a2 = await start(client, "alpha")
    b1 = await start(client, "beta")
    await client.post(f"/instances/{a1['id']}/cancel")

    def ids(page):
        return {item["id"] for item in page["items"]}

    assert ids((await client.get("/instances", params={"workflow": "alpha"})).json()) == {a1["id"], a2["id"]}
    assert ids((await client.get("/instances", params={"status": "cancelled"})).json()) == {a1["id"]}
    assert ids((await client.get("/instances", params={"status": "pending"})).json()) == {a2["id"], b1["id"]}
    both = {"status": "pending", "workflow": "beta"}
    assert ids((await client.get("/instances", params=both)).json()) == {b1["id"]}
    assert ids((await client.get("/instances", params={"workflow": "nope"})).json()) == set()
    assert ids((await client.get("/instances", params={"status": "completed"})).json()) == set()


async def test_list_refuses_bad_parameters(client):
    bad_status = await client.get("/instances", params={"status": "done"})
    assert bad_status.status_code == 422
    detail = bad_status.json()["detail"]
    assert isinstance(detail, str)
    assert "status" in detail
    for status in STATUSES:
        assert status in detail

    for params in [{"limit": 0}, {"limit": 501}, {"limit": "many"}, {"offset": -1}, {"offset": 2**70}]:
        response = await client.get("/instances", params=params)
        assert response.status_code == 422, params
        assert next(iter(params)) in response.json()["detail"]

    bad_name = await client.get("/instances", params={"workflow": "no spaces allowed"})
    assert bad_name.status_code == 400
