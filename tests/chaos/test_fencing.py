"""Fencing: a worker frozen past its lease loses the instance, and writes nothing once it wakes up."""

from __future__ import annotations

import asyncio
import signal

from postgit import HitEndpoint, Sequence
from tests.support.engine import wait_finished
from tests.support.processes import start_worker
from tests.support.waiting import wait_for_sync


async def test_a_worker_resumed_after_losing_its_lease_writes_nothing(
    service, store, database_url, http_server, tmp_path
):
    flow = Sequence(
        id="root",
        children=[
            HitEndpoint(id="slow", url=f"{http_server.url}/block/frozen", assign_to="$.slow"),
            HitEndpoint(id="after", url=f"{http_server.url}/ok/after"),
        ],
    )
    await service.deploy("frozen", flow.to_json())
    row, _ = await service.start("frozen")
    frozen = start_worker(database_url, tmp_path, 0)
    rescuer = None
    try:
        assert await asyncio.to_thread(http_server.arrival("frozen").wait, 20)
        frozen.popen.send_signal(signal.SIGSTOP)
        rescuer = start_worker(database_url, tmp_path, 1)
        instance = await wait_finished(store, row["id"], timeout=30)
        assert instance["status"] == "completed"
        steps_before = await store.list_steps(row["id"])
        events_before = await store.events_since(row["id"])

        frozen.popen.send_signal(signal.SIGCONT)
        http_server.release("frozen")  # the frozen worker's request now gets its answer
        await asyncio.to_thread(
            wait_for_sync,
            lambda: any(m in frozen.output() for m in ("lease lost", "lease runs out")),
            timeout=20,
            what="the resumed worker to give up",
        )
        assert await store.list_steps(row["id"]) == steps_before
        assert await store.events_since(row["id"]) == events_before
        assert (await store.get_instance(row["id"]))["state"] == instance["state"]
        assert len(http_server.hits("/ok/after")) == 1, "the frozen worker did not go on to the next step"
    finally:
        frozen.popen.send_signal(signal.SIGCONT)
        frozen.stop()
        if rescuer:
            rescuer.stop()
