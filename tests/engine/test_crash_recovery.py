"""Crash recovery: SIGKILL a worker mid-sleep and mid-step; a new worker finishes without re-running committed steps."""

from __future__ import annotations

import asyncio
from datetime import datetime

from postgit import HitEndpoint, Sequence, Sleep
from tests.support.engine import wait_event, wait_finished
from tests.support.processes import start_worker


async def test_worker_killed_mid_sleep_does_not_restart_the_sleep(service, store, database_url, http_server, tmp_path):
    flow = Sequence(
        id="root",
        children=[
            HitEndpoint(id="before", url=f"{http_server.url}/ok/before"),
            Sleep(id="nap", seconds=3),
            HitEndpoint(id="after", url=f"{http_server.url}/ok/after"),
        ],
    )
    await service.deploy("napper", flow.to_json())
    row, _ = await service.start("napper")
    first = start_worker(database_url, tmp_path, 0)
    try:
        suspended = await wait_event(store, row["id"], "step_suspended", "nap")
        first.kill()
    finally:
        first.stop()
    second = start_worker(database_url, tmp_path, 1)
    try:
        instance = await wait_finished(store, row["id"])
    finally:
        second.stop()
    assert instance["status"] == "completed", instance["error"]
    assert len(http_server.hits("/ok/before")) == 1
    assert len(http_server.hits("/ok/after")) == 1
    nap = next(s for s in await store.list_steps(row["id"]) if s["node_id"] == "nap")
    due = datetime.fromisoformat(suspended["data"]["until"])
    assert nap["finished_at"] >= due, "the sleep ended early"
    # a restarted sleep would suspend again with a new wake-up time; a resumed one completes the first suspension
    nap_events = [event for event in await store.events_since(row["id"]) if event["node_id"] == "nap"]
    assert [event["kind"] for event in nap_events] == ["step_suspended", "step_completed"], nap_events
    assert nap_events[1]["data"].get("resumed") is True, nap_events


async def test_worker_killed_mid_step_reruns_only_that_step(service, store, database_url, http_server, tmp_path):
    flow = Sequence(
        id="root",
        children=[
            HitEndpoint(id="first", url=f"{http_server.url}/ok/first", assign_to="$.first"),
            HitEndpoint(id="slow", url=f"{http_server.url}/block/slow", timeout=60),
            HitEndpoint(id="last", url=f"{http_server.url}/ok/last"),
        ],
    )
    await service.deploy("slowpoke", flow.to_json())
    row, _ = await service.start("slowpoke")
    first = start_worker(database_url, tmp_path, 0)
    try:
        arrived = http_server.arrival("slow")
        assert await asyncio.to_thread(arrived.wait, 20), "the slow step never started"
        first.kill()
    finally:
        first.stop()
    second = start_worker(database_url, tmp_path, 1)
    try:
        instance = await wait_finished(store, row["id"])
    finally:
        second.stop()
    assert instance["status"] == "completed", instance["error"]
    assert len(http_server.hits("/ok/first")) == 1, "a committed step ran again"
    slow_hits = http_server.hits("/block/slow")
    assert len(slow_hits) == 2, "the interrupted step must run again (at least once)"
    assert {hit.headers["Idempotency-Key"] for hit in slow_hits} == {f"{row['id']}:slow"}
    assert len(http_server.hits("/ok/last")) == 1
    steps = await store.list_steps(row["id"])
    # the attempt the killed worker was running is charged (the worker died while running it), then retried
    assert [(s["node_id"], s["attempt"], s["status"]) for s in steps] == [
        ("first", 1, "completed"),
        ("slow", 1, "failed"),
        ("slow", 2, "completed"),
        ("last", 1, "completed"),
    ]
    assert steps[1]["error"]["message"] == "the worker died while running node 'slow'"
