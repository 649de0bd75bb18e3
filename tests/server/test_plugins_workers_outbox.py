"""Node types, live workers, and the mail outbox."""

from __future__ import annotations

from datetime import datetime
from importlib.metadata import version

from postgit.mail import SmtpConfig
from tests.server.conftest import sequence, shout
from tests.support.server import api_client


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
    assert set(sleep) == {
        "name",
        "package",
        "version",
        "description",
        "plugin",
        "builtin",
        "on_server",
        "workers",
        "worker_versions",
        "warnings",
        "worker_queues",
    }
    assert (sleep["builtin"], sleep["worker_versions"], sleep["warnings"]) == (False, {}, [])


async def test_plugins_lists_the_node_types_the_engine_runs_itself(client, store):
    await store.register_worker("worker-1", ["Shout", "WaitForEvent", "SubWorkflow"])
    rows = {row["name"]: row for row in (await client.get("/plugins")).json()}
    for name in ("Sequence", "Parallel", "If", "Switch", "ForEach", "Try", "WaitForEvent", "SubWorkflow"):
        row = rows[name]
        assert (row["package"], row["plugin"], row["builtin"], row["on_server"]) == (
            "postgit-core",
            "engine",
            True,
            True,
        ), row
        assert row["version"] == version("postgit-core")
        assert row["description"]
        assert row["workers"] == ["worker-1"]


async def test_each_workers_plugin_version_is_listed_and_a_difference_is_warned_about(client, store, caplog):
    server_version = version("postgit-example-plugin")
    await store.register_worker(
        "worker-new", ["Shout"], {"Shout": {"package": "postgit-example-plugin", "version": "9.0.0"}}
    )
    await store.register_worker(
        "worker-same", ["Shout"], {"Shout": {"package": "postgit-example-plugin", "version": server_version}}
    )
    await store.register_worker("worker-old-release", ["Shout"])  # records no versions
    rows = {row["name"]: row for row in (await client.get("/plugins")).json()}
    shout = rows["Shout"]
    assert shout["worker_versions"] == {
        "worker-new": {"package": "postgit-example-plugin", "version": "9.0.0"},
        "worker-same": {"package": "postgit-example-plugin", "version": server_version},
        "worker-old-release": None,
    }
    warning = (
        f"node type Shout: worker worker-new runs postgit-example-plugin 9.0.0, the server validated against "
        f"{server_version}"
    )
    assert shout["warnings"] == [warning]
    assert rows["Sleep"]["warnings"] == []
    assert f"plugin version mismatch: {warning}" in caplog.text

    worker = next(row for row in (await client.get("/workers")).json() if row["id"] == "worker-new")
    assert worker["plugins"] == {"Shout": {"package": "postgit-example-plugin", "version": "9.0.0"}}


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
    assert set(worker) == {
        "id",
        "host",
        "pid",
        "node_types",
        "queues",
        "plugins",
        "started_at",
        "heartbeat_at",
        "seconds_since_heartbeat",
    }
    assert worker["id"] == "worker-1"
    assert worker["node_types"] == ["Shout", "Sleep"]
    assert worker["queues"] is None  # every queue
    assert isinstance(worker["pid"], int)
    assert 0 <= worker["seconds_since_heartbeat"] < 30
    datetime.fromisoformat(worker["heartbeat_at"])

    await store.deregister_worker("worker-1")
    assert (await client.get("/workers")).json() == []

    await store.register_worker("worker-2", ["Shout"], queues=["gpu", "default"])
    (worker,) = (await client.get("/workers")).json()
    assert worker["queues"] == ["default", "gpu"]
    shout = next(row for row in (await client.get("/plugins")).json() if row["name"] == "Shout")
    assert shout["worker_queues"] == {"worker-2": ["default", "gpu"]}


async def test_outbox_lists_parked_mail(client, store):
    assert (await client.get("/outbox")).json() == []
    for index in range(3):
        message = {"to": ["ada@example.com"], "subject": f"hello {index}", "body": "hi"}
        await store.enqueue_mail(idempotency_key=f"key-{index}", message=message)
    rows = (await client.get("/outbox")).json()
    assert [row["message"]["subject"] for row in rows] == ["hello 0", "hello 1", "hello 2"]
    assert set(rows[0]) == {
        "id",
        "idempotency_key",
        "message",
        "created_at",
        "sent_at",
        "sent_via",
        "attempts",
        "last_error",
    }
    assert (rows[0]["sent_at"], rows[0]["attempts"]) == (None, 0)
    assert rows[0]["idempotency_key"] == "key-0"
    assert len((await client.get("/outbox", params={"limit": 2})).json()) == 2
    assert (await client.get("/outbox", params={"limit": 0})).status_code == 422
    assert (await client.get("/outbox", params={"limit": 501})).status_code == 422


async def test_deploy_and_start_say_when_a_worker_runs_another_version(client, store, caplog):
    server_version = version("postgit-example-plugin")
    definition = sequence(shout("loud"), {"id": "nap", "type": "Sleep", "params": {"seconds": 1}})
    quiet = await client.post("/workflows", json={"name": "loud", "definition": definition})
    assert quiet.status_code == 201 and "warnings" not in quiet.json()
    recorded = (await client.get("/workflows/loud/versions/1")).json()["plugins"]
    assert recorded["Shout"] == {"package": "postgit-example-plugin", "version": server_version}
    assert recorded["Sleep"]["package"] == "postgit-builtins"
    started = (await client.post("/workflows/loud/instances", json={})).json()
    assert "warnings" not in started

    await store.register_worker(
        "w-9", ["Shout", "Sleep"], {"Shout": {"package": "postgit-example-plugin", "version": "9"}}
    )
    warning = (
        f"node type Shout: worker w-9 runs postgit-example-plugin 9, the server validated against {server_version}"
    )
    deployed = await client.post("/workflows", json={"name": "loud", "definition": definition})
    assert deployed.status_code == 200
    assert deployed.json() == {"name": "loud", "version": 1, "created": False, "warnings": [warning]}
    other = await client.post("/workflows", json={"name": "calm", "definition": sequence(shout("x"))})
    assert other.json()["warnings"] == [warning]
    sleepy = await client.post(
        "/workflows", json={"name": "sleepy", "definition": {"id": "n", "type": "Sleep", "params": {"seconds": 1}}}
    )
    assert "warnings" not in sleepy.json(), "a definition that does not use the node type is not warned about"

    started = await client.post("/workflows/calm/instances", json={})
    assert started.status_code == 201 and started.json()["warnings"] == [warning]
    batch = await client.post("/workflows/calm/instances/batch", json={"instances": [{}, {}]})
    assert batch.json()["started"] == 2 and batch.json()["warnings"] == [warning]
    assert caplog.text.count(f"plugin version mismatch: {warning}") == 1, "logged once, not per request"


async def test_parked_mail_is_sent_once_through_the_servers_smtp(database_url, store, smtp_server):
    controller, mailbox = smtp_server
    for index in range(3):
        message = {"from": "postgit@localhost", "to": ["ada@example.com"], "subject": f"hello {index}", "body": "hi"}
        await store.enqueue_mail(idempotency_key=f"key-{index}", message=message)
    ids = [row["id"] for row in await store.list_outbox()]
    smtp = SmtpConfig.from_url(f"smtp://127.0.0.1:{controller.port}")
    async with api_client(database_url, smtp=smtp) as client:
        one = await client.post(f"/outbox/{ids[1]}/send")
        assert one.status_code == 200, one.text
        assert one.json()["status"] == "sent"
        assert one.json()["sent_via"] == f"smtp://127.0.0.1:{controller.port}"
        again = (await client.post(f"/outbox/{ids[1]}/send")).json()
        assert (again["status"], again["sent_at"]) == ("already_sent", one.json()["sent_at"])

        first_page = (await client.post("/outbox/send", json={"limit": 1})).json()
        assert (first_page["sent"], first_page["next_after_id"]) == (1, ids[0])
        rest = (await client.post("/outbox/send", json={"after_id": ids[0]})).json()
        assert [(r["id"], r["status"]) for r in rest["results"]] == [(ids[2], "sent")]
        assert rest["next_after_id"] is None
        assert (await client.post("/outbox/send")).json()["results"] == []
        assert sorted(message["Subject"] for message in mailbox.messages) == ["hello 0", "hello 1", "hello 2"]

        assert (await client.get("/outbox")).json() == []
        assert [row["id"] for row in (await client.get("/outbox", params={"status": "sent"})).json()] == ids
        assert len((await client.get("/outbox", params={"status": "all"})).json()) == 3
        assert (await client.get("/outbox", params={"status": "gone"})).status_code == 422

        missing = await client.post("/outbox/999999/send")
        assert missing.status_code == 404
        assert missing.json()["detail"] == "outbox message 999999 does not exist"
        for bad in ({"limit": 0}, {"limit": 501}, {"after_id": -1}, {"nope": 1}):
            assert (await client.post("/outbox/send", json=bad)).status_code == 422, bad
        assert (await client.post("/outbox/0/send")).status_code == 422
        assert (await client.post(f"/outbox/{2**53 + 1}/send")).status_code == 422


async def test_without_smtp_sending_is_a_409_naming_the_variable(client, store):
    await store.enqueue_mail(idempotency_key="key", message={"to": ["ada@example.com"], "subject": "s", "body": "b"})
    [row] = (await client.get("/outbox")).json()
    for answer in (await client.post(f"/outbox/{row['id']}/send"), await client.post("/outbox/send")):
        assert answer.status_code == 409
        assert "set POSTGIT_SMTP_URL" in answer.json()["detail"]
    assert (await client.get("/outbox")).json() == [row]
