"""Crash recovery: SIGKILL a worker mid-sleep and mid-step; a new worker finishes without re-running committed steps."""

from __future__ import annotations

import asyncio

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
    due = suspended["data"]["until"]
    slept = (nap["finished_at"] - nap["started_at"]).total_seconds()
    assert 3 <= slept < 5, f"the sleep restarted or ran late: {slept}s (due {due})"


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
    assert [(s["node_id"], s["status"]) for s in steps] == [
        ("first", "completed"),
        ("slow", "completed"),
        ("last", "completed"),
    ]
