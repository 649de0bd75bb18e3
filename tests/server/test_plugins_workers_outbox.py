"""Node types, live workers, and the mail outbox."""

from __future__ import annotations

from datetime import datetime


async def test_plugins_lists_the_servers_node_types(client):
    rows = (await client.get("/plugins")).json()
    names = [row["name"] for row in rows]
    assert names == sorted(names)
    assert {"HitEndpoint", "Sleep", "SendEmail", "Shout"} <= set(names)
    shout = next(row for row in rows if row["name"] == "Shout")
    assert shout["package"] == "postgit-example-plugin"
    assert shout["version"] == "0.1.0"
    assert shout["plugin"] == "postgit-example-plugin:shout"
    assert shout["description"] == "Upper-case a string"
    assert shout["on_server"] is True
    assert shout["workers"] == []
    sleep = next(row for row in rows if row["name"] == "Sleep")
    assert sleep["package"] == "postgit-builtins"
    assert set(sleep) == {"name", "package", "version", "description", "plugin", "on_server", "workers"}


async def test_plugins_include_live_workers_node_types(client, store):
    await store.register_worker("worker-b", ["Shout", "Sleep"])
    await store.register_worker("worker-a", ["Shout", "OnlyOnWorkers"])
    rows = {row["name"]: row for row in (await client.get("/plugins")).json()}
    assert rows["Shout"]["workers"] == ["worker-a", "worker-b"]
    assert rows["Sleep"]["workers"] == ["worker-b"]
    assert rows["HitEndpoint"]["workers"] == []
    remote = rows["OnlyOnWorkers"]
    assert remote["on_server"] is False
    assert remote["workers"] == ["worker-a"]
    assert remote["package"] is None


async def test_workers_lists_live_workers(client, store):
    assert (await client.get("/workers")).json() == []
    await store.register_worker("worker-1", ["Sleep", "Shout"])
    rows = (await client.get("/workers")).json()
    assert len(rows) == 1
    worker = rows[0]
    assert set(worker) == {"id", "host", "pid", "node_types", "started_at", "heartbeat_at", "seconds_since_heartbeat"}
    assert worker["id"] == "worker-1"
    assert worker["node_types"] == ["Shout", "Sleep"]
    assert isinstance(worker["pid"], int)
    assert 0 <= worker["seconds_since_heartbeat"] < 30
    datetime.fromisoformat(worker["heartbeat_at"])

    await store.deregister_worker("worker-1")
    assert (await client.get("/workers")).json() == []


async def test_outbox_lists_parked_mail(client, store):
    assert (await client.get("/outbox")).json() == []
    for index in range(3):
        message = {"to": ["ada@example.com"], "subject": f"hello {index}", "body": "hi"}
        await store.enqueue_mail(idempotency_key=f"key-{index}", message=message)
    rows = (await client.get("/outbox")).json()
    assert [row["message"]["subject"] for row in rows] == ["hello 0", "hello 1", "hello 2"]
    assert set(rows[0]) == {"id", "idempotency_key", "message", "created_at"}
    assert rows[0]["idempotency_key"] == "key-0"
    assert len((await client.get("/outbox", params={"limit": 2})).json()) == 2
    assert (await client.get("/outbox", params={"limit": 0})).status_code == 422
    assert (await client.get("/outbox", params={"limit": 501})).status_code == 422
