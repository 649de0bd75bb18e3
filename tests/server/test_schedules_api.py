"""Schedules through the API: create, list, show, pause, resume, trigger, backfill, delete, and bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from postgit.cron import fire_key
from tests.server.conftest import deploy
from tests.support.waiting import wait_for

SCHEDULE = {"name": "nightly", "workflow": "greet", "cron": "0 3 * * *", "timezone": "Europe/Paris"}


async def test_create_list_show_pause_resume_and_delete(client):
    await deploy(client, "greet")
    response = await client.post("/schedules", json={**SCHEDULE, "input": {"who": "ops"}})
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["overlap"] == "skip"
    assert created["catchup_window"] == 3600
    assert created["paused"] is False
    next_fire = datetime.fromisoformat(created["next_fire_at"])
    assert next_fire.astimezone(datetime.now().astimezone().tzinfo) > datetime.now(UTC)
    assert len(created["upcoming"]) == 5
    assert [datetime.fromisoformat(t) for t in created["upcoming"]][:2] == [next_fire, next_fire + timedelta(days=1)]

    listed = (await client.get("/schedules")).json()
    assert [row["name"] for row in listed] == ["nightly"]
    assert listed[0]["next_fire_at"] == created["next_fire_at"]

    paused = (await client.post("/schedules/nightly/pause")).json()
    assert paused["paused"] is True and paused["next_fire_at"] is None and paused["upcoming"] == []
    resumed = (await client.post("/schedules/nightly/resume")).json()
    assert resumed["paused"] is False and resumed["next_fire_at"] == created["next_fire_at"]

    duplicate = await client.post("/schedules", json=SCHEDULE)
    assert duplicate.status_code == 409
    assert "schedule 'nightly' already exists" in duplicate.json()["detail"]

    assert (await client.delete("/schedules/nightly")).status_code == 204
    assert (await client.get("/schedules/nightly")).status_code == 404
    assert (await client.delete("/schedules/nightly")).status_code == 404
    assert (await client.get("/schedules")).json() == []


async def test_trigger_starts_now_with_the_schedules_input_and_key(client, store):
    await deploy(client, "greet")
    await client.post("/schedules", json={**SCHEDULE, "input": {"who": "ops"}, "paused": True})
    response = await client.post("/schedules/nightly/trigger")
    assert response.status_code == 200, response.text
    triggered = response.json()
    assert triggered["created"] is True
    instance = (await client.get(f"/instances/{triggered['id']}")).json()
    assert instance["state"] == {"input": {"who": "ops"}}
    nominal = datetime.fromisoformat(triggered["nominal_time"]).astimezone(UTC)
    [by_key] = await store.instances_by_keys([fire_key("nightly", nominal)])
    assert str(by_key["id"]) == triggered["id"]
    shown = (await client.get("/schedules/nightly")).json()
    assert shown["last_instance_id"] == triggered["id"]
    assert shown["fires"][0]["kind"] == "trigger"
    assert shown["fires"][0]["outcome"] == "started"
    assert datetime.fromisoformat(shown["fires"][0]["nominal_at"]) == nominal


async def test_backfill_starts_each_time_once_and_keeps_those_fired_before(client):
    await deploy(client, "greet")
    await client.post("/schedules", json={**SCHEDULE, "cron": "0 * * * *", "timezone": "UTC", "paused": True})
    body = {"from": "2026-01-01T00:00:00Z", "to": "2026-01-01T05:30:00Z"}
    first = (await client.post("/schedules/nightly/backfill", json=body)).json()
    assert first == {"schedule": "nightly", "fires": 6, "started": 6, "existing": 0, "failed": 0, "errors": []}
    again = {"from": "2026-01-01T04:00:00+00:00", "to": "2026-01-01T07:00:00Z"}
    second = (await client.post("/schedules/nightly/backfill", json=again)).json()
    assert (second["fires"], second["started"], second["existing"]) == (4, 2, 2)

    instances = (await client.get("/instances", params={"workflow": "greet"})).json()["items"]
    assert len(instances) == 8
    shown = (await client.get("/schedules/nightly")).json()
    assert {fire["outcome"] for fire in shown["fires"]} == {"started"}
    assert {fire["kind"] for fire in shown["fires"]} == {"backfill"}
    assert len(shown["fires"]) == 8


@pytest.mark.parametrize(
    ("change", "status", "fragment"),
    [
        ({"cron": "61 * * * *"}, 400, "cron: '61 * * * *' does not parse"),
        ({"cron": "0 0 30 2 *"}, 400, "cron: '0 0 30 2 *' matches no time"),
        ({"timezone": "Mars/Olympus_Mons"}, 400, "timezone: 'Mars/Olympus_Mons' is not a known time zone"),
        ({"timezone": "Europe/Paris "}, 422, "body.timezone"),
        ({"workflow": "nope"}, 400, "workflow: 'nope' is not deployed"),
        ({"overlap": "sometimes"}, 422, "body.overlap"),
        ({"catchup_window": -5}, 422, "body.catchup_window"),
        ({"catchup_window": 0}, 422, "body.catchup_window"),
        ({"name": "-bad"}, 400, "invalid schedule name '-bad'"),
        ({"input": {"n": "x" * 1_000_001}}, 400, "input: is"),
    ],
)
async def test_bad_input_is_refused_naming_the_field_and_nothing_is_written(client, change, status, fragment):
    await deploy(client, "greet")
    response = await client.post("/schedules", json={**SCHEDULE, **change})
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert fragment in detail
    assert "\n" not in detail
    assert (await client.get("/schedules")).json() == []


async def test_an_input_the_workflows_schema_refuses_is_refused_at_create(client):
    schema = {"type": "object", "required": ["who"], "properties": {"who": {"type": "string"}}}
    definition = {"root": {"id": "shout", "type": "Shout", "params": {"text": "hi"}}, "inputSchema": schema}
    await deploy(client, "greet", definition)
    response = await client.post("/schedules", json={**SCHEDULE, "input": {"who": 5}})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("input.who: 5 is not of type 'string'")
    assert (await client.get("/schedules")).json() == []


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, 400, "to: is before from"),
        ({"from": "2026-01-01T00:00:00Z", "to": "2999-01-01T00:00:00Z"}, 400, "to: is in the future"),
        ({"from": "2020-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, 400, "more than 1,000 fire times"),
        ({"from": "2026-01-01", "to": "2026-01-02T00:00:00Z"}, 422, "body.from"),
        ({"from": "2026-01-01T00:00:00", "to": "2026-01-02T00:00:00Z"}, 422, "body.from"),
    ],
)
async def test_bad_backfills_are_refused_and_start_nothing(client, body, status, fragment):
    await deploy(client, "greet")
    await client.post("/schedules", json={**SCHEDULE, "cron": "0 * * * *", "paused": True})
    response = await client.post("/schedules/nightly/backfill", json=body)
    assert response.status_code == status, response.text
    assert fragment in response.json()["detail"]
    assert (await client.get("/instances")).json()["items"] == []


async def test_unknown_schedules_are_404(client):
    for method, path in [
        ("GET", "/schedules/ghost"),
        ("POST", "/schedules/ghost/pause"),
        ("POST", "/schedules/ghost/resume"),
        ("POST", "/schedules/ghost/trigger"),
        ("DELETE", "/schedules/ghost"),
    ]:
        response = await client.request(method, path)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["detail"] == "schedule 'ghost' does not exist"


async def test_the_servers_own_scheduler_fires_a_schedule(client):
    await deploy(client, "greet")
    await client.post("/schedules", json={**SCHEDULE, "cron": "* * * * * *", "overlap": "allow_all"})

    async def fired() -> list:
        shown = (await client.get("/schedules/nightly")).json()
        return [fire for fire in shown["fires"] if fire["outcome"] == "started" and fire["kind"] == "scheduled"]

    fires = await wait_for(fired, timeout=20, interval=0.2, what="a scheduled fire")
    instance = (await client.get(f"/instances/{fires[0]['instance_id']}")).json()
    assert instance["workflow"] == "greet"
