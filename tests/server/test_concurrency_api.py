"""Concurrency keys and priorities through the API: the settings a deploy refuses (422 naming the field), a start
whose key does not render (400 naming `concurrency.key`), priorities out of range (422 naming `priority`), and how a
waiting or cancelled start shows."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.server.conftest import deploy, shout, start

KEYED = {"root": shout(text="{{ input.customer }}"), "concurrency": {"key": "{{ input.customer }}", "limit": 1}}


async def count_instances(client) -> int:
    return len((await client.get("/instances")).json()["items"])


@pytest.mark.parametrize(
    ("concurrency", "field"),
    [
        ({"key": "{{ input.customer }}", "limit": -1}, "concurrency.limit"),
        ({"key": "{{ input.customer }}", "limit": 10_001}, "concurrency.limit"),
        ({"key": "{{ input.customer }}", "strategy": "newest"}, "concurrency.strategy"),
        ({"key": "{{ input.customer"}, "concurrency.key"),
        ({"limit": 2}, "concurrency.key"),
    ],
)
async def test_a_bad_concurrency_setting_is_a_422_naming_the_field_and_nothing_is_deployed(
    client, concurrency: dict[str, Any], field: str
):
    response = await client.post(
        "/workflows", json={"name": "bad", "definition": {"root": shout(), "concurrency": concurrency}}
    )
    assert response.status_code == 422, response.text
    assert [issue["field"] for issue in response.json()["issues"]] == [field]
    assert (await client.get("/workflows/bad")).status_code == 404


async def test_a_start_whose_key_does_not_render_is_a_400_naming_the_field(client):
    await deploy(client, "keyed", KEYED)
    response = await client.post("/workflows/keyed/instances", json={"input": {"name": "no customer"}})
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert detail.startswith("concurrency.key: template failed to render") and "\n" not in detail
    assert await count_instances(client) == 0


async def test_a_start_that_finds_the_key_full_waits_with_a_reason_naming_the_key(client):
    await deploy(client, "keyed", KEYED)
    first = await start(client, "keyed", input={"customer": "acme"})
    second = await start(client, "keyed", input={"customer": "acme"})
    other = await start(client, "keyed", input={"customer": "globex"})
    assert first["status"] == second["status"] == other["status"] == "pending"
    shown = (await client.get(f"/instances/{second['id']}")).json()
    assert shown["wait_reason"] == "waiting for a concurrency slot of key acme (limit 1)"
    assert (shown["concurrency_key"], shown["holds_slot"], shown["priority"]) == ("acme", False, 3)
    assert (await client.get(f"/instances/{first['id']}")).json()["holds_slot"] is True
    assert (await client.get(f"/instances/{other['id']}")).json()["wait_reason"] != shown["wait_reason"]
    # cancelling the holder hands its slot on
    assert (await client.post(f"/instances/{first['id']}/cancel")).status_code in (200, 202)
    assert (await client.get(f"/instances/{second['id']}")).json()["wait_reason"] != shown["wait_reason"]


async def test_a_cancel_newest_start_is_answered_cancelled(client):
    definition = {**KEYED, "concurrency": {"key": "{{ input.customer }}", "strategy": "cancel_newest"}}
    await deploy(client, "newest", definition)
    await start(client, "newest", input={"customer": "acme"})
    second = await start(client, "newest", input={"customer": "acme"})
    assert second["status"] == "cancelled"
    shown = (await client.get(f"/instances/{second['id']}")).json()
    assert "concurrency key acme" in shown["error"]["message"]


@pytest.mark.parametrize("priority", [0, 6, -1, 2.5, True, "1", None])
async def test_a_start_priority_out_of_range_is_refused_naming_the_field(client, priority):
    await deploy(client, "plain")
    response = await client.post("/workflows/plain/instances", json={"input": {}, "priority": priority})
    if priority is None:  # the default
        assert response.status_code == 201, response.text
        return
    assert response.status_code == 422, response.text
    assert "priority" in response.text
    assert await count_instances(client) == 0


async def test_priorities_are_stored_from_starts_and_batches(client, database_url):
    await deploy(client, "plain")
    single = await start(client, "plain", input={}, priority=1)
    batch = await client.post(
        "/workflows/plain/instances/batch",
        json={"priority": 5, "instances": [{"input": {}}, {"input": {}, "priority": 2}]},
    )
    assert batch.status_code == 200, batch.text
    refused = await client.post("/workflows/plain/instances/batch", json={"instances": [{"input": {}, "priority": 0}]})
    assert refused.status_code == 422 and "priority" in refused.text
    ids = [single["id"]] + [result["id"] for result in batch.json()["results"]]
    with psycopg.connect(database_url) as conn:
        rows = dict(conn.execute("SELECT id::text, priority FROM postgit.instances").fetchall())
    assert [rows[i] for i in ids] == [1, 5, 2]
