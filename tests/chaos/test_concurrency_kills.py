"""Chaos: worker processes SIGKILLed while their instances hold concurrency slots. The slots stay with the instances
(another worker continues them once the lease expires), none leaks, and no key ever runs more than its limit."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

from postgit import HitEndpoint, Sequence, Workflow
from tests.support.engine import wait_finished
from tests.support.processes import start_worker
from tests.support.waiting import wait_for

LIMIT = 2
STEPS = 3
CUSTOMERS = {"acme": 8, "globex": 4}


async def test_a_sigkilled_worker_leaks_no_slot_and_no_key_ever_runs_more_than_its_limit(
    service, store, database_url, http_server, tmp_path
):
    flow = Sequence(
        id="root",
        children=[
            HitEndpoint(
                id=f"s{n}",
                url=f"{http_server.url}/sleep/300/s{n}",
                retry={"maxAttempts": 10, "initialInterval": 0.1},
            )
            for n in range(STEPS)
        ],
    )
    concurrency = {"key": "{{ input.customer }}", "limit": LIMIT}
    await service.deploy("limited", Workflow(flow, concurrency=concurrency).to_json())
    customer_of = {}
    for customer, count in CUSTOMERS.items():
        for _ in range(count):
            row, _ = await service.start("limited", {"customer": customer})
            customer_of[str(row["id"])] = customer
    total = len(customer_of)

    most_held: dict[str, int] = defaultdict(int)
    stop_sampling = asyncio.Event()

    async def sample() -> None:
        """What the database says, every few milliseconds: slots held per key, and no instance runs without one."""
        async with store.pool.connection() as conn:
            while not stop_sampling.is_set():
                cursor = await conn.execute(
                    "SELECT concurrency_key AS key, count(*) FILTER (WHERE holds_slot) AS held,"
                    " count(*) FILTER (WHERE status IN ('running', 'waiting') AND NOT holds_slot) AS unslotted"
                    " FROM postgit.instances WHERE workflow = 'limited' GROUP BY concurrency_key"
                )
                for row in await cursor.fetchall():
                    most_held[row["key"]] = max(most_held[row["key"]], row["held"])
                    assert row["unslotted"] == 0, f"an instance of key {row['key']} runs without a slot"
                await asyncio.sleep(0.02)

    async def slot_of(instance_id: str) -> dict:
        async with store.pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT status, holds_slot, lease_owner FROM postgit.instances WHERE id = %s", (instance_id,)
            )
            return await cursor.fetchone()

    async def finished() -> bool:
        rows = await store.list_instances(status="completed", limit=total + 1)
        return len(rows) == total

    env = {"POSTGIT_LEASE_SECONDS": "3", "POSTGIT_WORKER_CONCURRENCY": "10"}
    workers = [start_worker(database_url, tmp_path, n, **env) for n in range(2)]
    sampler = asyncio.create_task(sample())
    kills: list[float] = []
    try:
        for round_ in range(2):
            index, holder = await wait_for(
                lambda: holder_mid_step(store, http_server, workers),
                timeout=60,
                interval=0.01,
                what="a worker in the middle of a slot holder's step",
            )
            killed_pid = workers[index].pid
            workers[index].kill()
            kills.append(time.time())
            # the instance keeps its slot while nobody runs it, until its lease expires and a worker carries on
            kept = await slot_of(holder)
            assert kept["status"] == "running" and kept["holds_slot"], kept
            assert f"-{killed_pid}-" in kept["lease_owner"]
            workers[index] = start_worker(database_url, tmp_path, 2 + round_, **env)
            resumed = await wait_finished(store, holder, timeout=60)
            assert resumed["status"] == "completed" and not resumed["holds_slot"]
        await wait_for(finished, timeout=120, interval=0.2, what="every instance to complete")
    finally:
        stop_sampling.set()
        for worker in workers:
            worker.stop()
    await sampler  # raises what the sampler found

    assert len(kills) == 2
    assert dict(most_held) == {"acme": LIMIT, "globex": LIMIT}
    async with store.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT count(*) FILTER (WHERE holds_slot OR awaiting_slot) AS slotted,"
            " count(*) FILTER (WHERE status = 'completed') AS completed FROM postgit.instances"
        )
        counts = await cursor.fetchone()
    assert counts == {"slotted": 0, "completed": total}, "every slot came back"

    # from the outside: the steps of more than LIMIT instances of one key never overlap in time
    spans = instance_spans(http_server.requests)
    assert set(spans) == set(customer_of)
    for customer in CUSTOMERS:
        ours = [span for instance, span in spans.items() if customer_of[instance] == customer]
        assert most_at_once(ours) <= LIMIT, f"more than {LIMIT} instances of {customer} ran at once"


async def holder_mid_step(store, http_server, workers) -> list | None:
    """(worker index, instance id) of a slot holder whose step's call began under 100 ms ago (of ~300 ms)."""
    now = time.time()
    in_flight = [
        r.headers["Idempotency-Key"].split(":")[0]
        for r in list(http_server.requests)
        if r.ended_at is None and now - r.at < 0.1
    ]
    if not in_flight:
        return None
    async with store.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT id::text AS id, lease_owner FROM postgit.instances"
            " WHERE id = ANY(%s::uuid[]) AND holds_slot AND status = 'running'",
            (in_flight,),
        )
        for found in await cursor.fetchall():
            for index, worker in enumerate(workers):
                if worker.alive() and f"-{worker.pid}-" in (found["lease_owner"] or ""):
                    return [index, found["id"]]
    return None


def instance_spans(requests) -> dict[str, tuple[float, float]]:
    """Per instance (from each request's Idempotency-Key): from its first step's request to its last one's answer."""
    spans: dict[str, tuple[float, float]] = {}
    for request in requests:
        instance = request.headers["Idempotency-Key"].split(":")[0]
        ended = request.ended_at if request.ended_at is not None else request.at
        first, last = spans.get(instance, (request.at, ended))
        spans[instance] = (min(first, request.at), max(last, ended))
    return spans


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The most spans that overlap at any moment (one that ends as another starts does not overlap it)."""
    edges = sorted((moment, step) for start, end in spans for moment, step in ((start, 1), (end, -1)))
    running = most = 0
    for _, step in edges:  # at a tie an end (-1) sorts before a start
        running += step
        most = max(most, running)
    return most
