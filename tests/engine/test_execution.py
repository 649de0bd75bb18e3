"""Engine behaviour: data passing, version pinning, timers on time, node types no worker has, SIGTERM."""

from __future__ import annotations

import asyncio
import time

from postgit import HitEndpoint, Node, Sequence, Sleep, ref
from postgit.db import Store
from postgit.plugins import load_registry
from postgit.registry import NodeRegistry
from tests.support.engine import in_process_worker, wait_event, wait_finished
from tests.support.processes import running_workers, start_worker
from tests.support.waiting import wait_for


async def test_refs_templates_and_assign_to_pass_data_between_steps(service, store, registry, database_url):
    flow = Sequence(
        id="root",
        children=[
            Node("Shout", id="greet", text="hello {{ input.name }}", assign_to="$.greeting"),
            Node("Shout", id="again", text=ref("$.greeting.text"), exclamations=3, assign_to="$.nested.loud"),
        ],
    )
    await service.deploy("data", flow.to_json())
    row, _ = await service.start("data", {"name": "ada"})
    async with in_process_worker(store, registry, database_url):
        instance = await wait_finished(store, row["id"])
    assert instance["status"] == "completed", instance["error"]
    assert instance["state"] == {
        "input": {"name": "ada"},
        "greeting": {"text": "HELLO ADA!"},
        "nested": {"loud": {"text": "HELLO ADA!!!!"}},
    }


async def test_an_instance_runs_the_version_it_started_with(service, store, registry, database_url):
    v1 = Sequence(id="root", children=[Node("Shout", id="a", text="one", assign_to="$.out")])
    v2 = Sequence(id="root", children=[Node("Shout", id="b", text="two", assign_to="$.out")])
    assert (await service.deploy("pinned", v1.to_json())).version == 1
    old, _ = await service.start("pinned")
    assert (await service.deploy("pinned", v2.to_json())).version == 2
    new, _ = await service.start("pinned")
    async with in_process_worker(store, registry, database_url):
        first = await wait_finished(store, old["id"])
        second = await wait_finished(store, new["id"])
    assert (first["version"], first["state"]["out"]["text"]) == (1, "ONE!")
    assert (second["version"], second["state"]["out"]["text"]) == (2, "TWO!")


class FirstFinishWaitsForAClaim(Store):
    """A store whose first write that finishes an instance waits (at most a few seconds) for a claim of another."""

    def __init__(self, pool):
        super().__init__(pool)
        self.claimed = asyncio.Event()
        self.claimed_while_finishing: bool | None = None

    async def claim_instances(self, **kwargs):
        rows = await super().claim_instances(**kwargs)
        if rows:
            self.claimed.set()
        return rows

    async def commit_steps(self, batch, commit_id=0):
        if self.claimed_while_finishing is None and any(item.get("status") == "completed" for item in batch):
            self.claimed.clear()
            try:
                await asyncio.wait_for(self.claimed.wait(), 5)
                self.claimed_while_finishing = True
            except TimeoutError:
                self.claimed_while_finishing = False
        return await super().commit_steps(batch, commit_id)


async def test_a_worker_claims_the_next_instance_while_the_last_write_of_one_is_written(
    service, store, registry, database_url
):
    """A slot is free once an instance's last write is submitted: the claim need not wait for its commit."""
    await service.deploy("one", Sequence(id="root", children=[Node("Shout", id="a", text="x")]).to_json())
    first, _ = await service.start("one")
    second, _ = await service.start("one")
    watched = FirstFinishWaitsForAClaim(store.pool)
    async with in_process_worker(watched, registry, database_url, concurrency=1):
        for row in (first, second):
            assert (await wait_finished(store, row["id"]))["status"] == "completed"
    assert watched.claimed_while_finishing is True


async def test_a_timer_fires_at_its_due_time_not_at_the_next_poll(service, store, registry, database_url):
    flow = Sequence(id="root", children=[Sleep(id="nap", seconds=1), Node("Shout", id="after", text="x")])
    await service.deploy("timer", flow.to_json())
    async with in_process_worker(store, registry, database_url, poll_seconds=30):
        row, _ = await service.start("timer")
        instance = await wait_finished(store, row["id"], timeout=10)
    steps = {s["node_id"]: s for s in await store.list_steps(row["id"])}
    due = steps["nap"]["output"]["slept_until"]
    lateness = (steps["after"]["started_at"] - steps["nap"]["started_at"]).total_seconds() - 1
    assert instance["status"] == "completed"
    assert lateness < 1.0, f"timer fired {lateness:.3f}s late (due {due}); the worker must sleep until run_at"


async def test_an_idle_worker_wakes_on_notify_not_at_the_next_poll(route, service, store, tmp_path):
    flow = Sequence(id="root", children=[Node("Shout", id="loud", text="x")])
    await service.deploy("wake", flow.to_json())
    with running_workers(route.url, tmp_path, POSTGIT_POLL_SECONDS="60", **route.env):
        await wait_for(lambda: store.list_live_workers(60), what="the worker to register")
        await asyncio.sleep(1)  # past the claim the worker makes once its LISTEN connection is up
        started = time.monotonic()
        row, _ = await service.start("wake")
        instance = await wait_finished(store, row["id"], timeout=20)
        assert instance["status"] == "completed", instance["error"]
        assert time.monotonic() - started < 5, "the worker waited for its poll: it missed the notification"


async def test_an_instance_waits_with_a_reason_when_no_worker_has_its_node_type(service, store, database_url):
    everything = load_registry()
    without_shout = NodeRegistry([everything[name] for name in everything if name != "Shout"])
    flow = Sequence(id="root", children=[Node("Shout", id="loud", text="x")])
    await service.deploy("orphan", flow.to_json())
    row, _ = await service.start("orphan")
    async with in_process_worker(store, without_shout, database_url) as worker:
        instance = await service.get_instance(row["id"])
        assert instance["status"] == "pending"
        assert instance["wait_reason"] == "no live worker has node type 'Shout'"
        assert worker.id in {w["id"] for w in await service.live_workers()}
    async with in_process_worker(store, everything, database_url):
        assert (await wait_finished(store, row["id"]))["status"] == "completed"


async def test_sigterm_hands_back_a_running_step_promptly(service, store, database_url, http_server, tmp_path):
    flow = Sequence(id="root", children=[HitEndpoint(id="slow", url=f"{http_server.url}/block/held", timeout=60)])
    await service.deploy("held", flow.to_json())
    row, _ = await service.start("held")
    worker = start_worker(database_url, tmp_path, 0, POSTGIT_SHUTDOWN_GRACE_SECONDS="1", POSTGIT_LEASE_SECONDS="30")
    try:
        assert await asyncio.to_thread(http_server.arrival("held").wait, 20)
        started = time.monotonic()
        code = await asyncio.to_thread(worker.terminate, 20)
        assert code == 0, worker.output()
        assert time.monotonic() - started < 10
    finally:
        worker.stop()
    instance = await store.get_instance(row["id"])
    assert instance["status"] == "pending", "the lease was handed back, not left to expire"
    assert instance["lease_owner"] is None
    assert await store.list_live_workers(60) == [], "the worker deregistered"
    http_server.release("held")
    replacement = start_worker(database_url, tmp_path, 1)
    try:
        assert (await wait_finished(store, row["id"]))["status"] == "completed"
    finally:
        replacement.stop()


async def test_a_cancelled_instance_starts_no_further_step(service, store, registry, database_url, http_server):
    flow = Sequence(
        id="root",
        children=[
            HitEndpoint(id="slow", url=f"{http_server.url}/block/cancel", timeout=60),
            HitEndpoint(id="next", url=f"{http_server.url}/ok/next"),
        ],
    )
    await service.deploy("cancel", flow.to_json())
    row, _ = await service.start("cancel")
    async with in_process_worker(store, registry, database_url) as worker:
        assert await asyncio.to_thread(http_server.arrival("cancel").wait, 20)
        await service.cancel(row["id"])
        http_server.release("cancel")
        await wait_event(store, row["id"], "instance_cancelled")

        async def idle() -> bool:
            return worker.in_flight == 0

        await wait_for(idle, what="the worker to abandon the cancelled instance")
    assert http_server.hits("/ok/next") == []
    instance = await store.get_instance(row["id"])
    assert instance["status"] == "cancelled"
