"""Secrets: read from the worker's environment, never stored in step params, state, events, errors or logs."""

from __future__ import annotations

import pytest

from postgit import HitEndpoint, Node, Sequence
from postgit.errors import DefinitionError
from postgit.sdk import secret
from tests.support.engine import in_process_worker, wait_finished

TOKEN = "S3CR3T-T0KEN-VALUE"


async def stored_text(store, instance_id) -> str:
    instance = await store.get_instance(instance_id)
    steps = await store.list_steps(instance_id)
    events = await store.events_since(instance_id)
    return repr((instance, steps, events))


async def test_a_secret_reaches_the_handler_and_nothing_stored(
    service, store, registry, database_url, http_server, monkeypatch, caplog
):
    monkeypatch.setenv("POSTGIT_SECRET_API_TOKEN", TOKEN)
    flow = Sequence(
        id="root",
        children=[
            HitEndpoint(
                id="call",
                url=f"{http_server.url}/ok/call",
                headers={"Authorization": secret("API_TOKEN")},
                assign_to="$.call",
            ),
            Node("Shout", id="echo", text=secret("API_TOKEN"), assign_to="$.echo"),
            HitEndpoint(
                id="fail",
                url=f"{http_server.url}/status/400",
                headers={"X-Token": secret("API_TOKEN")},
                json={"echo": "{{ echo.text }}"},
            ),
        ],
    )
    await service.deploy("secret", flow.to_json())
    assert TOKEN not in repr(flow.to_json())
    row, _ = await service.start("secret")
    async with in_process_worker(store, registry, database_url):
        instance = await wait_finished(store, row["id"])
    assert instance["status"] == "failed"
    [call] = http_server.hits("/ok/call")
    assert call.headers["Authorization"] == TOKEN, "the handler got the real value"
    stored = await stored_text(store, row["id"])
    assert TOKEN not in stored
    assert instance["state"]["echo"] == {"text": "***!"}, "an output holding the secret is redacted"
    assert call_step(await store.list_steps(row["id"]))["params"]["headers"] == {"Authorization": "***"}
    assert TOKEN not in caplog.text


async def test_a_missing_secret_fails_the_step_naming_the_variable(service, store, registry, database_url):
    flow = Sequence(id="root", children=[Node("Shout", id="loud", text=secret("NOT_SET_ANYWHERE"))])
    await service.deploy("missing", flow.to_json())
    row, _ = await service.start("missing")
    async with in_process_worker(store, registry, database_url):
        instance = await wait_finished(store, row["id"])
    assert instance["status"] == "failed"
    assert "POSTGIT_SECRET_NOT_SET_ANYWHERE" in instance["error"]["message"]
    assert "field 'params.text'" in instance["error"]["message"]


async def test_a_malformed_secret_is_refused_at_deploy(service):
    flow = {"id": "x", "type": "Shout", "params": {"text": {"$secret": "lower case"}}}
    with pytest.raises(DefinitionError, match=r"node 'x', field 'params\.text': a secret is"):
        await service.deploy("bad", flow)


def call_step(steps):
    return next(step for step in steps if step["node_id"] == "call")


@pytest.mark.parametrize(
    ("node_type", "params", "field"),
    [
        ("WaitForEvent", {"event": "go", "key": {"$secret": "API_TOKEN"}}, "params.key"),
        ("SubWorkflow", {"workflow": "child", "input": {"token": {"$secret": "API_TOKEN"}}}, "params.input"),
    ],
)
async def test_a_secret_in_params_that_are_stored_as_they_are_is_refused_at_deploy(service, node_type, params, field):
    await service.deploy("child", {"id": "x", "type": "Shout", "params": {"text": "x"}})
    flow = {"id": "n", "type": node_type, "params": params}
    with pytest.raises(DefinitionError, match=rf"node 'n', field '{field}': a secret cannot be used in a {node_type}"):
        await service.deploy("stored", flow)
