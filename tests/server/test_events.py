"""The server-sent event stream of an instance's events."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

import fastapi.routing
import httpx
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

import postgit_server.routes.events as events_route
from tests.server.conftest import deploy, start
from tests.support.server import parse_sse, serving, sse_events
from tests.support.waiting import wait_for


async def cancelled_instance(client) -> str:
    await deploy(client, "greet")
    started = await start(client, "greet")
    assert (await client.post(f"/instances/{started['id']}/cancel")).status_code == 200
    return started["id"]


async def test_a_finished_instance_replays_its_history_and_ends(client):
    instance_id = await cancelled_instance(client)
    response = await client.get(f"/instances/{instance_id}/events")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    events = parse_sse(response.text)
    assert [event.event for event in events] == ["instance_created", "instance_cancelled"]
    first, last = (event.json() for event in events)
    assert set(first) == {"id", "kind", "node_id", "data", "at"}
    assert first["kind"] == "instance_created"
    assert first["data"] == {"workflow": "greet", "version": 1}
    assert datetime.fromisoformat(first["at"]).tzinfo is not None
    assert [event.id for event in events] == [str(first["id"]), str(last["id"])]
    assert first["id"] < last["id"]


async def test_the_stream_starts_after_the_cursor(client):
    instance_id = await cancelled_instance(client)
    events = parse_sse((await client.get(f"/instances/{instance_id}/events")).text)
    first_id = events[0].id

    after = parse_sse((await client.get(f"/instances/{instance_id}/events", params={"after": first_id})).text)
    assert [event.event for event in after] == ["instance_cancelled"]

    resumed = await client.get(f"/instances/{instance_id}/events", headers={"Last-Event-ID": first_id})
    assert [event.event for event in parse_sse(resumed.text)] == ["instance_cancelled"]

    # ?after= wins over the header
    both = await client.get(
        f"/instances/{instance_id}/events", params={"after": 0}, headers={"Last-Event-ID": first_id}
    )
    assert len(parse_sse(both.text)) == 2

    past_the_end = await client.get(f"/instances/{instance_id}/events", params={"after": events[-1].id})
    assert past_the_end.status_code == 200
    assert parse_sse(past_the_end.text) == []


async def test_unknown_instance_is_404_before_streaming(client):
    for instance_id in [str(uuid.uuid4()), "nope"]:
        response = await client.get(f"/instances/{instance_id}/events")
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/json")
        assert "does not exist" in response.json()["detail"]


async def test_bad_cursors_are_refused(client):
    instance_id = await cancelled_instance(client)
    bad_header = await client.get(f"/instances/{instance_id}/events", headers={"Last-Event-ID": "abc"})
    assert bad_header.status_code == 400
    assert "Last-Event-ID" in bad_header.json()["detail"]
    for after in ["-1", "x", str(2**64)]:
        response = await client.get(f"/instances/{instance_id}/events", params={"after": after})
        assert response.status_code == 422, after
        assert "after" in response.json()["detail"]


async def test_a_live_stream_follows_new_events_until_the_instance_ends(database_url, monkeypatch):
    monkeypatch.setattr(fastapi.routing, "_PING_INTERVAL", 0.2)
    async with serving(database_url) as server, httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        await deploy(client, "greet")
        started = await start(client, "greet")
        seen: list[str] = []
        comments: list[str] = []
        created = asyncio.Event()

        async def follow() -> None:
            async with client.stream("GET", f"/instances/{started['id']}/events") as response:
                assert response.status_code == 200
                async for event in sse_events(response, comments):
                    seen.append(event.event)
                    if event.event == "instance_created":
                        created.set()

        async def pinged() -> bool:
            assert not following.done(), "the stream ended while the instance was still pending"
            return bool(comments)

        following = asyncio.create_task(follow())
        await asyncio.wait_for(created.wait(), 10)
        await wait_for(pinged, timeout=10, what="a keep-alive comment on the idle stream")
        assert (await client.post(f"/instances/{started['id']}/cancel")).status_code == 200
        await asyncio.wait_for(following, 10)  # the stream ends by itself after the terminal event
        assert seen == ["instance_created", "instance_cancelled"]
        assert "ping" in comments


async def test_the_stream_stops_polling_when_the_client_goes_away(database_url, monkeypatch):
    closed = asyncio.Event()
    real_follow = events_route.follow

    async def watched_follow(*args, **kwargs):
        try:
            async for event in real_follow(*args, **kwargs):
                yield event
        finally:
            closed.set()

    monkeypatch.setattr(events_route, "follow", watched_follow)
    async with serving(database_url) as server, httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        await deploy(client, "greet")
        started = await start(client, "greet")
        async with client.stream("GET", f"/instances/{started['id']}/events") as response:
            async for event in sse_events(response):
                assert event.event == "instance_created"
                break
        await asyncio.wait_for(closed.wait(), 10)
        shown = (await client.get(f"/instances/{started['id']}")).json()
        assert shown["status"] == "pending"


async def test_a_live_stream_ends_when_the_database_goes_away(database_url):
    async with (
        serving(database_url, db_timeout_seconds=1) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as client,
    ):
        await deploy(client, "greet")
        started = await start(client, "greet")
        seen: list[str] = []
        async with client.stream("GET", f"/instances/{started['id']}/events") as response:
            async for event in sse_events(response):
                seen.append(event.event)
                if event.event == "instance_created":
                    drop_database(database_url)
        # ended, not cut off: the client resumes with Last-Event-ID elsewhere or later
        assert seen == ["instance_created"]
        assert (await client.get("/workflows")).status_code == 503


def drop_database(database_url: str) -> None:
    name = conninfo_to_dict(database_url)["dbname"]
    with psycopg.connect(make_conninfo(database_url, dbname="postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
