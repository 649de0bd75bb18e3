"""The console's live parts: long polls woken by the server's one change listener, not by polling."""

from __future__ import annotations

import asyncio
import html
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import psycopg
from fastapi import FastAPI

from postgit.db.changes import (
    EVERYTHING,
    MAX_IDS,
    MAX_NOTIFICATIONS,
    MAX_PAYLOAD,
    ChangeNotifier,
    change_payloads,
)
from postgit.engine.changes import ChangeHub
from postgit.starts import StartItem
from postgit_server.app import begin_shutdown, create_app
from postgit_server.console import pages
from tests.server.conftest import deploy, sequence, shout, start
from tests.support.engine import in_process_worker
from tests.support.server import server_settings
from tests.support.waiting import wait_for

NAP = sequence({"id": "nap", "type": "Sleep", "params": {"seconds": 3}}, shout("after"))
WAITS = sequence({"id": "approval", "type": "WaitForEvent", "params": {"event": "approve"}}, shout("after"))
BOUND = 15
"""How long a test waits for a long poll to answer: well under the 25 s it waits when it hears nothing."""


@asynccontextmanager
async def console(
    database_url: str, *, listening: bool = True, **settings: Any
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app in-process with its lifespan (pool, change listener), its hub listening, and a client of it."""
    app = create_app(server_settings(database_url, **settings))
    async with app.router.lifespan_context(app):
        if listening:
            await asyncio.wait_for(app.state.changes.wait_listening(), BOUND)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://postgit.test", timeout=60) as client:
            yield app, client


def live_url(page: httpx.Response) -> str:
    match = re.search(r'data-live hx-get="([^"]+)"', page.text)
    assert match, "the page has no live part"
    url = html.unescape(match.group(1))
    assert f"wait={pages.LONG_POLL_SECONDS}" in url
    return url


async def watched(hub: ChangeHub, poll: asyncio.Task[httpx.Response], watchers: int = 1) -> None:
    """Wait until the long poll waits on the hub (and has not answered)."""

    async def waiting() -> bool:
        assert not poll.done(), f"the long poll answered at once: {poll.result().status_code}"
        return hub.watchers >= watchers

    await wait_for(waiting, timeout=BOUND, what="the long poll to wait on the change hub")


async def status_of(client: httpx.AsyncClient, instance_id: str) -> str:
    return (await client.get(f"/instances/{instance_id}")).json()["status"]


async def nap_under_a_long_poll(client: httpx.AsyncClient, hub: ChangeHub) -> asyncio.Task[httpx.Response] | None:
    """Start a napper and, once it sleeps, a long poll of its page waiting on the hub.

    None when the nap ended before the poll waited (the poll answered at once, rightly: a machine that busy).
    """
    instance_id = (await start(client, "napper"))["id"]

    async def sleeping() -> bool:
        return await status_of(client, instance_id) == "waiting"

    await wait_for(sleeping, timeout=BOUND, what="the instance to sleep")
    page = await client.get(f"/ui/instances/{instance_id}")
    assert 'data-status="waiting"' in page.text
    poll = asyncio.create_task(client.get(live_url(page)))

    async def waiting_or_answered() -> bool:
        return poll.done() or hub.watchers >= 1

    await wait_for(waiting_or_answered, timeout=BOUND, what="the long poll to wait on the change hub")
    if poll.done():
        assert await status_of(client, instance_id) != "waiting", "the poll answered while nothing had changed"
        return None
    return poll


async def test_a_step_a_worker_commits_ends_a_waiting_long_poll(database_url, store, registry):
    async with console(database_url) as (app, client):
        hub = app.state.changes
        await deploy(client, "napper", NAP)
        async with in_process_worker(store, registry, database_url):
            for _ in range(3):
                poll = await nap_under_a_long_poll(client, hub)
                if poll is not None:
                    break
            else:
                raise AssertionError("the nap ended before the long poll waited, three times")
            # the timer ends, the worker (with a store of its own) claims and commits: its notification wakes the poll
            answer = await asyncio.wait_for(poll, BOUND)
        assert answer.status_code == 200
        assert 'data-status="waiting"' not in answer.text  # running (claimed) or completed
        assert hub.watchers == 0


async def test_a_long_poll_looks_once_while_nothing_changes(database_url):
    async with console(database_url) as (app, client):
        await deploy(client, "approval", WAITS)
        with app.state.changes.watch() as start_heard:
            instance_id = (await start(client, "approval"))["id"]
            assert await start_heard.wait(BOUND)  # the start's own notification, out of the way
        page = await client.get(f"/ui/instances/{instance_id}")
        store = app.state.service.store
        looks = 0
        get_instance = store.get_instance

        async def counted(ident: uuid.UUID):
            nonlocal looks
            looks += 1
            return await get_instance(ident)

        store.get_instance = counted
        answer = await client.get(live_url(page).replace(f"wait={pages.LONG_POLL_SECONDS}", "wait=1.5"))
        assert answer.status_code == 204 and looks == 1


async def test_an_event_sent_elsewhere_updates_a_waiting_instance_page(database_url, service):
    async with console(database_url) as (app, client):
        await deploy(client, "approval", WAITS)
        instance_id = (await start(client, "approval"))["id"]
        page = await client.get(f"/ui/instances/{instance_id}")
        poll = asyncio.create_task(client.get(live_url(page)))
        await watched(app.state.changes, poll)
        await service.cancel(instance_id)  # another process's store: its own notification
        answer = await asyncio.wait_for(poll, BOUND)
        assert answer.status_code == 200 and 'data-status="cancelled"' in answer.text
        assert "data-live" not in answer.text  # finished: the page stops asking


async def test_the_instance_list_shows_a_new_instance_without_polling(database_url, service):
    async with console(database_url) as (app, client):
        await deploy(client, "approval", WAITS)
        page = await client.get("/ui/instances")
        assert 'data-count="all">0<' in page.text
        poll = asyncio.create_task(client.get(live_url(page)))
        await watched(app.state.changes, poll)
        (started,) = await service.start_many("approval", [StartItem(None, None)])
        answer = await asyncio.wait_for(poll, BOUND)
        assert answer.status_code == 200 and str(started.id) in answer.text
        assert 'data-count="all">1<' in answer.text and "data-live" in answer.text
        older = await client.get("/ui/instances", params={"after": f"2999-01-01T00:00:00+00:00~{started.id}"})
        assert "data-live" not in older.text  # only the first page follows changes


async def test_the_listener_reconnects_after_its_connection_is_killed(database_url, service):
    async with console(database_url) as (app, client):
        hub = app.state.changes
        killed = hub.backend_pid
        with psycopg.connect(database_url, autocommit=True) as conn:
            assert conn.execute("SELECT pg_terminate_backend(%s)", [killed]).fetchone()[0]
        await asyncio.wait_for(hub.wait_listening(connections=2), BOUND)
        assert hub.backend_pid not in (None, killed)

        await deploy(client, "approval", WAITS)
        instance_id = (await start(client, "approval"))["id"]
        page = await client.get(f"/ui/instances/{instance_id}")
        poll = asyncio.create_task(client.get(live_url(page)))
        await watched(hub, poll)
        await service.cancel(instance_id)
        answer = await asyncio.wait_for(poll, BOUND)
        assert answer.status_code == 200 and 'data-status="cancelled"' in answer.text


async def test_a_listener_behind_a_transaction_pooler_hears_nothing_so_pages_poll(database_url, pgbouncer, caplog):
    pooled = pgbouncer.url_for(database_url)
    async with console(pooled, listening=False, prepared_statements=False) as (app, client):
        hub = app.state.changes

        async def warned() -> bool:
            return "POSTGIT_LISTEN_DATABASE_URL can bypass it" in caplog.text

        await wait_for(warned, timeout=BOUND, what="the hub to find that it hears nothing")
        assert not hub.listening
        await deploy(client, "approval", WAITS)
        instance_id = (await start(client, "approval"))["id"]
        page = await client.get(f"/ui/instances/{instance_id}")
        poll = asyncio.create_task(client.get(live_url(page)))
        await watched(hub, poll)
        await client.post(f"/instances/{instance_id}/cancel")
        answer = await asyncio.wait_for(poll, BOUND)  # found by polling every degraded_seconds
        assert answer.status_code == 200 and 'data-status="cancelled"' in answer.text


async def test_long_polls_end_when_the_server_stops(database_url):
    async with console(database_url) as (app, client):
        await deploy(client, "approval", WAITS)
        instance_id = (await start(client, "approval"))["id"]
        instance_poll = asyncio.create_task(client.get(live_url(await client.get(f"/ui/instances/{instance_id}"))))
        list_poll = asyncio.create_task(client.get(live_url(await client.get("/ui/instances"))))
        await watched(app.state.changes, instance_poll, watchers=2)
        begin_shutdown(app)
        assert (await asyncio.wait_for(instance_poll, BOUND)).status_code == 204
        assert (await asyncio.wait_for(list_poll, BOUND)).status_code == 204


async def test_counts_stop_at_the_cap_and_say_so(database_url, service, monkeypatch):
    monkeypatch.setattr(pages, "COUNT_CAP", 3)
    async with console(database_url) as (_, client):
        await deploy(client, "approval", WAITS)
        await service.start_many("approval", [StartItem(None, None) for _ in range(5)])
        page = html.unescape((await client.get("/ui/instances")).text)
        assert 'data-count="pending">3+<' in page and 'data-count="all">3+<' in page
        assert "Counts stop at 3 per status" in page
        few = html.unescape((await client.get("/ui/instances", params={"status": "cancelled"})).text)
        assert 'data-count="cancelled">0<' in few
        one = html.unescape((await client.get("/ui/instances", params={"workflow": "approval"})).text)
        assert 'data-count="pending">3+<' in one and "Counted among the workflow's newest 3" in one


def test_changes_are_announced_in_payloads_under_the_limit():
    ids = [str(uuid.uuid4()) for _ in range(500)]
    payloads = change_payloads(ids)
    assert len(payloads) > 1 and all(len(p) <= MAX_PAYLOAD for p in payloads)
    assert sorted(",".join(payloads).split(",")) == sorted(ids)
    assert change_payloads([]) == []
    assert change_payloads(ids[:2], everything=True) == [EVERYTHING]
    too_many = [str(uuid.uuid4()) for _ in range(MAX_NOTIFICATIONS * MAX_PAYLOAD // 36 + 10)]
    assert change_payloads(too_many) == [EVERYTHING]


async def test_while_the_hub_cannot_listen_a_watch_waits_briefly_and_wakes_on_reconnection():
    hub = ChangeHub(degraded_seconds=0.1)
    with hub.watch(uuid.uuid4()) as watch:
        assert await watch.wait(30) is False  # cut to degraded_seconds: the page polls slowly instead of freezing
        hub.listening = True
        waiter = asyncio.create_task(watch.wait(30))
        await asyncio.sleep(0)
        hub.wake_all()  # what a (re)connection does: whatever changed meanwhile was not heard
        assert await asyncio.wait_for(waiter, BOUND) is True
        hub.close()
        assert await watch.wait(30) is True
    assert hub.watchers == 0


async def test_a_notifier_gathers_ids_and_sends_them_once():
    sent: list[list[str]] = []
    flushed = asyncio.Event()

    async def send(payloads: list[str]) -> None:
        sent.append(payloads)
        flushed.set()

    notifier = ChangeNotifier(send, flush_seconds=0.01)
    first, second = uuid.uuid4(), uuid.uuid4()
    notifier.changed([first])
    notifier.changed([second, first])
    await asyncio.wait_for(flushed.wait(), BOUND)
    assert len(sent) == 1 and sorted(sent[0][0].split(",")) == sorted([str(first), str(second)])
    notifier.changed_everything()
    await notifier.aclose()
    assert sent[-1] == [EVERYTHING]
    notifier.changed(uuid.uuid4() for _ in range(MAX_IDS + 1))  # too many to name
    await notifier.aclose()
    assert sent[-1] == [EVERYTHING] and len(sent) == 3
