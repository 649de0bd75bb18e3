"""The Python client (``from postgit_cli import Client, AsyncClient``) against real server and worker processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from postgit_cli import (
    AsyncClient,
    Client,
    Conflict,
    InstanceCancelled,
    InstanceFailed,
    InvalidDefinition,
    InvalidRequest,
    NotFound,
    ResultTimeout,
    ServerUnavailable,
    Unauthorized,
)
from tests.support.ports import free_port
from tests.support.processes import running_workers
from tests.support.server import running_server
from tests.support.waiting import wait_for_sync

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "client.py"
SHOUT = {"id": "s", "type": "Shout", "params": {"text": "hi {{ input.name }}"}, "assignTo": "$.said"}
FAILING = {"id": "bad", "type": "Shout", "params": {"text": {"$ref": "$.input.missing"}}, "retry": {"maxAttempts": 1}}
NAP = {"id": "nap", "type": "Sleep", "params": {"seconds": 3600}}


@pytest.fixture
def api(database_url, tmp_path):
    """The URL of a server with a worker, on a fresh database."""
    with running_server(database_url, tmp_path) as (_, url), running_workers(database_url, tmp_path):
        yield url


def test_the_readme_example_runs(api):
    env = {**os.environ, "DC_API_URL": api}
    result = subprocess.run([sys.executable, str(EXAMPLE)], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(": ORDER A-1 APPROVED! (approved by ada)"), result.stdout


def test_deploy_start_and_wait_for_the_result(api):
    with Client(api) as client:
        deployed = client.deploy(SHOUT, "hello")
        assert deployed["version"] >= 1
        handle = client.start("hello", input={"name": "ada"}, idempotency_key="hello-ada")
        assert handle.result(timeout=60)["said"]["text"] == "HI ADA!"
        assert handle.status() == "completed"
        again = client.start("hello", input={"name": "ada"}, idempotency_key="hello-ada")
        assert (again.id, again.created) == (handle.id, False)


def test_failures_and_cancellations_are_typed(api):
    with Client(api) as client:
        client.deploy(FAILING, "failing")
        failed = client.start("failing", input={})
        with pytest.raises(InstanceFailed) as caught:
            failed.result(timeout=60)
        assert caught.value.error["node_id"] == "bad"

        client.deploy(NAP, "nap")
        napping = client.start("nap")
        with pytest.raises(ResultTimeout):
            napping.result(timeout=0.5)
        napping.cancel()
        with pytest.raises(InstanceCancelled):
            napping.result(timeout=30)
        with pytest.raises(Conflict):
            napping.cancel()


def test_bad_requests_are_typed_errors_naming_what_is_wrong(api):
    with Client(api) as client:
        with pytest.raises(InvalidDefinition) as caught:
            client.deploy({"id": "x", "type": "NoSuchType"}, "broken")
        assert caught.value.issues[0]["node_id"] == "x"
        assert caught.value.issues[0]["field"] == "type"
        with pytest.raises(NotFound):
            client.get("01900000-0000-7000-8000-000000000000")
        with pytest.raises(NotFound):
            client.start("never-deployed")
        with pytest.raises(InvalidRequest):
            client.start("bad name!")
        with pytest.raises(TypeError):
            client.deploy(42, "x")


def test_list_iterates_over_every_page(api):
    with Client(api) as client:
        client.deploy(NAP, "many")
        started = {client.start("many", input={"n": n}).id for n in range(130)}
        listed = [row["id"] for row in client.list(workflow="many")]
        assert set(listed) == started and len(listed) == len(started)
        assert list(client.list(workflow="many", status="completed")) == []


def test_listings_batches_pages_streams_and_deletes(api):
    with Client(api) as client:
        client.deploy(SHOUT, "listed")
        assert [row["name"] for row in client.workflows()] == ["listed"]
        assert "Shout" in {row["name"] for row in client.plugins()}
        assert len(wait_for_sync(client.workers, timeout=30, what="the worker to register")) == 1
        assert client.outbox() == []
        items = [{"input": {"name": str(n)}, "idempotency_key": f"batch-{n}"} for n in range(3)]
        batch = client.start_batch("listed", [*items, {"input": {"name": "\u0000"}}])  # NUL: refused
        assert (batch["started"], batch["failed"]) == (3, 1)
        assert client.start_batch("listed", items)["existing"] == 3
        first = client.list_page(workflow="listed", limit=2)
        assert len(first["items"]) == 2 and first["next_offset"] == 2
        ids = [result["id"] for result in batch["results"][:3]]
        for instance_id in ids:
            client.handle(instance_id).result(timeout=60)
        with client.event_stream(ids[0]) as stream:
            kinds = []
            for event in stream:
                kinds.append(json.loads(event.data)["kind"])
                if kinds[-1] == "instance_completed":
                    break
        assert kinds[0] == "instance_created"
        client.delete(ids[0])
        with pytest.raises(NotFound):
            client.get(ids[0])
        with pytest.raises(NotFound):
            client.delete(ids[0])


def test_an_unreachable_server_is_server_unavailable():
    with Client(f"http://127.0.0.1:{free_port()}") as client, pytest.raises(ServerUnavailable, match="cannot reach"):
        client.get("01900000-0000-7000-8000-000000000000")


def test_an_unavailable_server_is_asked_again_only_when_asking_twice_is_harmless(http_server):
    with Client(f"{http_server.url}/unavailable/read/2") as client:
        assert client.get("some-id")["status"] == "ok"
    assert len(http_server.hits("/unavailable/read/2/instances/some-id")) == 3
    with Client(f"{http_server.url}/unavailable/cancel/1") as client, pytest.raises(ServerUnavailable):
        client.cancel("some-id")
    assert len(http_server.hits("/unavailable/cancel/1/instances/some-id/cancel")) == 1


def test_a_refused_token_is_unauthorized(database_url, tmp_path):
    with running_server(database_url, tmp_path, POSTGIT_API_TOKEN="right-token") as (_, url):
        with Client(url, token="wrong-token") as client, pytest.raises(Unauthorized):
            client.get("01900000-0000-7000-8000-000000000000")
        with Client(url, token="right-token") as client, pytest.raises(NotFound):
            client.get("01900000-0000-7000-8000-000000000000")


async def test_the_async_client(api):
    async with AsyncClient(api) as client:
        await client.deploy(SHOUT, "hello-async")
        handle = await client.start("hello-async", input={"name": "bob"}, idempotency_key="hello-bob")
        assert (await handle.result(timeout=60))["said"]["text"] == "HI BOB!"
        assert [row["id"] async for row in client.list(workflow="hello-async")] == [handle.id]
        await client.deploy(NAP, "nap-async")
        napping = await client.start("nap-async")
        with pytest.raises(ResultTimeout):
            await napping.result(timeout=0.5)
        await napping.cancel()
        with pytest.raises(InstanceCancelled):
            await napping.result(timeout=30)
        with pytest.raises(NotFound):
            await client.get("01900000-0000-7000-8000-000000000000")


def test_priorities_and_concurrency_keys_through_the_client(api):
    with Client(api) as client:
        keyed = {"root": NAP, "concurrency": {"key": "{{ input.who }}", "strategy": "cancel_newest"}}
        client.deploy(keyed, "keyed-nap")
        first = client.start("keyed-nap", input={"who": "ada"}, priority=1)
        second = client.start("keyed-nap", input={"who": "ada"}, priority=5)
        assert second.started["status"] == "cancelled"
        assert "concurrency key ada" in client.get(second.id)["error"]["message"]
        batch = client.start_batch("keyed-nap", [{"input": {"who": "bob"}, "priority": 2}], priority=4)
        assert batch["started"] == 1
        with pytest.raises(InvalidRequest, match="priority"):
            client.start("keyed-nap", input={"who": "eve"}, priority=0)
        with pytest.raises(InvalidRequest, match=r"concurrency\.key"):
            client.start("keyed-nap", input={})
        first.cancel()
