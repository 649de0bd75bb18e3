"""Chaos: a step that kills its worker process (``os._exit``) counts as a failed attempt each time. The poison
instance fails after its attempts, with "the worker died while running node ..."; the healthy instances the dead
workers held finish."""

from __future__ import annotations

import asyncio
import time

from postgit import HitEndpoint, Node, Sequence
from postgit.plugins import load_registry
from postgit.service import WorkflowService
from tests.support.fault_plugin import load_plugin, plugin_path
from tests.support.processes import start_worker

HEALTHY = 20
WORKERS = 2


async def test_a_step_that_kills_its_worker_fails_after_its_attempts_while_healthy_instances_finish(
    store, database_url, tmp_path, http_server
):
    service = WorkflowService(store, load_registry(extra=[load_plugin()]))
    poison = Sequence(
        id="root",
        children=[
            HitEndpoint(id="before", url=f"{http_server.url}/ok/before"),
            Node("KillsItsWorker", id="poison", retry={"maxAttempts": 2, "initialInterval": 0.1}),
        ],
    )
    healthy = Sequence(
        id="root",
        children=[HitEndpoint(id=f"h{n}", url=f"{http_server.url}/ok/h{n}") for n in range(3)],
    )
    await service.deploy("poison", poison.to_json())
    await service.deploy("healthy", healthy.to_json())
    # leases long enough that a busy machine does not let one run out under a live worker
    env = {"PYTHONPATH": plugin_path(tmp_path), "POSTGIT_LEASE_SECONDS": "5"}
    workers = [start_worker(database_url, tmp_path, n, **env) for n in range(WORKERS)]
    started = len(workers)
    try:
        poisoned, _ = await service.start("poison", {})
        ids = [(await service.start("healthy", {"n": n}))[0]["id"] for n in range(HEALTHY)]
        deadline = time.monotonic() + 90
        while True:
            rows = [await store.get_instance(i) for i in [poisoned["id"], *ids]]
            if all(row["status"] in ("completed", "failed", "cancelled") for row in rows):
                break
            assert time.monotonic() < deadline, [row["status"] for row in rows]
            for index, worker in enumerate(workers):
                if not worker.alive():  # the poison step took it down: start another, as a supervisor would
                    worker.stop()
                    workers[index] = start_worker(database_url, tmp_path, started, **env)
                    started += 1
            await asyncio.sleep(0.1)
    finally:
        for worker in workers:
            worker.stop()

    instance = await store.get_instance(poisoned["id"])
    assert instance["status"] == "failed"
    assert instance["error"]["node_id"] == "poison"
    assert instance["error"]["message"] == "the worker died while running node 'poison'"
    rows = await store.list_steps(poisoned["id"])
    # (on a loaded machine a lease may also run out under `before`, which is then charged and run again)
    assert [(s["attempt"], s["status"]) for s in rows if s["node_id"] == "poison"] == [(1, "failed"), (2, "failed")]
    assert [s["status"] for s in rows if s["node_id"] == "before"][-1] == "completed"
    lost = [e for e in await store.events_since(poisoned["id"]) if e["kind"] == "worker_lost"]
    assert [(e["node_id"], e["data"]["attempt"], e["data"]["retried"]) for e in lost] == [
        ("poison", 1, True),
        ("poison", 2, False),
    ]
    assert started - WORKERS == 2, "each attempt took one worker down, and no more"
    statuses = {(await store.get_instance(i))["status"] for i in ids}
    assert statuses == {"completed"}
