"""The ``postgit-server`` console script as a real process, with a real ``postgit-worker``."""

from __future__ import annotations

import asyncio
import signal
import subprocess

import httpx

from postgit import HitEndpoint, Node, SendEmail, Sequence, Sleep, ref
from tests.support.ports import free_port
from tests.support.processes import running_workers, script
from tests.support.server import running_server, server_env, sse_events
from tests.support.waiting import wait_for

TOKEN = "e2e-token"


def example(base_url: str):
    """The seed's example, plus the example plugin's Shout node."""
    return Sequence(
        id="root",
        children=[
            HitEndpoint(id="fetch-data", url=f"{base_url}/health", assign_to="$.fetchResult"),
            Sleep(id="wait", seconds=1),
            Node("Shout", id="shout", text=ref("$.fetchResult.body.status"), assign_to="$.shouted"),
            SendEmail(id="notify", to="user@example.com", subject="Workflow Complete", body=ref("$.shouted.text")),
        ],
    )


async def test_deploy_run_and_follow_the_example_over_http(route, tmp_path):
    with running_server(route.url, tmp_path, POSTGIT_API_TOKEN=TOKEN, **route.env) as (server, url):
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as client:
            assert (await client.get("/workflows", headers={"Authorization": "Bearer wrong"})).status_code == 401

            definition = example(url).to_json()
            deployed = await client.post("/workflows", json={"name": "seed", "definition": definition})
            assert deployed.status_code == 201, deployed.text
            redeployed = await client.post("/workflows", json={"name": "seed", "definition": definition})
            assert redeployed.json() == {"name": "seed", "version": 1, "created": False}

            started = await client.post(
                "/workflows/seed/instances", json={"input": {"user": "ada"}}, headers={"Idempotency-Key": "run-1"}
            )
            assert started.status_code == 201, started.text
            instance_id = started.json()["id"]
            pending = (await client.get(f"/instances/{instance_id}")).json()
            assert pending["wait_reason"] == "no worker is running"

            with running_workers(route.url, tmp_path, **route.env) as workers:
                events = []
                # the first event after the created one waits for a worker process to start: on a loaded machine,
                # longer than the client's 10 s between two reads
                stream_timeout = httpx.Timeout(10, read=60)
                async with client.stream("GET", f"/instances/{instance_id}/events", timeout=stream_timeout) as response:
                    assert response.status_code == 200
                    async for event in sse_events(response):
                        assert event.json()["kind"] == event.event
                        events.append(event)
                    # the server closes the stream after the terminal event
                kinds = [(event.event, event.json()["node_id"]) for event in events]
                assert kinds[0] == ("instance_created", None)
                assert kinds[-1] == ("instance_completed", None)
                assert ("step_suspended", "wait") in kinds
                for node in ["fetch-data", "wait", "shout", "notify"]:
                    assert ("step_completed", node) in kinds
                ids = [int(event.id) for event in events]
                assert ids == sorted(ids)

                async def worker_listed():
                    return (await client.get("/workers")).json()

                live = await wait_for(worker_listed, timeout=10, what="the worker in /workers")
                plugins = {row["name"]: row for row in (await client.get("/plugins")).json()}
                assert plugins["Shout"]["package"] == "postgit-example-plugin"
                assert plugins["Shout"]["workers"] == [live[0]["id"]]
                assert all(process.alive() for process in workers)

            shown = (await client.get(f"/instances/{instance_id}")).json()
            assert shown["status"] == "completed", shown["error"]
            assert shown["state"]["fetchResult"]["body"] == {"status": "ok", "database": "ok"}
            assert shown["state"]["shouted"] == {"text": "OK!"}
            assert [step["node_id"] for step in shown["steps"] if step["status"] == "completed"] == [
                "fetch-data",
                "wait",
                "shout",
                "notify",
            ]

            replay = await asyncio.wait_for(client.get(f"/instances/{instance_id}/events"), 10)
            assert replay.text.count("event: ") == len(events)

            again = await client.post("/workflows/seed/instances", headers={"Idempotency-Key": "run-1"})
            assert again.status_code == 200
            assert again.json()["id"] == instance_id
            assert again.json()["status"] == "completed"

            outbox = (await client.get("/outbox")).json()
            assert len(outbox) == 1
            assert outbox[0]["message"]["body"] == "OK!"
            assert outbox[0]["message"]["to"] == ["user@example.com"]

        assert server.terminate() == 0
        log = server.log_path.read_text()
        assert f"listening on http://127.0.0.1:{url.rsplit(':', 1)[1]}" in log
        assert "connection pool closed" in log
        assert "Traceback" not in log


def test_missing_database_url_is_one_line_and_exit_2(tmp_path):
    env = server_env("unused", free_port())
    del env["DATABASE_URL"]
    result = subprocess.run([script("postgit-server")], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "postgit-server: DATABASE_URL is not set: point it at PostgreSQL, e.g. postgresql://user@host:5432/db"
    ]


def test_unreachable_database_and_bad_port_are_one_line(database_url):
    cases = [
        ({"DATABASE_URL": database_url.rsplit("/", 1)[0] + "/no_such_database_here"}, "cannot use the database"),
        ({"PORT": "http"}, "PORT='http' is not a port number"),
        ({"PORT": "70000"}, "must be between 1 and 65535"),
    ]
    for overrides, expected in cases:
        env = server_env(database_url, free_port())
        env.update(overrides)
        result = subprocess.run([script("postgit-server")], env=env, capture_output=True, text=True, timeout=30)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert expected in lines[0]


async def test_sigterm_ends_open_event_streams_and_exits_cleanly(database_url, tmp_path):
    with running_server(database_url, tmp_path) as (server, url):
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            definition = {"id": "s", "type": "Shout", "params": {"text": "hi"}}
            assert (await client.post("/workflows", json={"name": "x", "definition": definition})).status_code == 201
            instance_id = (await client.post("/workflows/x/instances")).json()["id"]
            seen = []
            async with client.stream("GET", f"/instances/{instance_id}/events") as response:
                async for event in sse_events(response):
                    seen.append(event.event)
                    if event.event == "instance_created":
                        server.popen.send_signal(signal.SIGTERM)
                # the stream ends when the server stops, well before uvicorn's graceful-shutdown timeout
            assert seen == ["instance_created"]
        assert await asyncio.to_thread(server.popen.wait, 10) == 0
        log = server.log_path.read_text()
        assert "connection pool closed" in log
        assert "Traceback" not in log
        assert "graceful shutdown exceeded" not in log
