"""Chaos: worker processes SIGKILLed while their instances hold concurrency slots. The slots stay with the instances
(another worker continues them once the lease expires), none leaks, and no key ever runs more than its limit."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

from postgit import HitEndpoint, Sequence, Workflow
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

    async def leased_by(pid: int) -> int:
        async with store.pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT count(*) AS n FROM postgit.instances WHERE holds_slot AND status = 'running'"
                " AND lease_owner LIKE %s",
                (f"%-{pid}-%",),
            )
            return (await cursor.fetchone())["n"]

    async def finished() -> bool:
        rows = await store.list_instances(status="completed", limit=total + 1)
        return len(rows) == total

    env = {"POSTGIT_LEASE_SECONDS": "3", "POSTGIT_WORKER_CONCURRENCY": "10"}
    workers = [start_worker(database_url, tmp_path, n, **env) for n in range(2)]
    sampler = asyncio.create_task(sample())
    kills: list[float] = []
    try:
        for round_ in range(2):
            # a worker in the middle of a step of an instance that holds a slot
            async def victim() -> list[int] | None:
                for index, worker in enumerate(workers):
                    if worker.alive() and await leased_by(worker.pid) and http_server.requests:
                        return [index]
                return None

            [index] = await wait_for(victim, timeout=60, interval=0.05, what="a worker running a slot holder")
            killed_pid = workers[index].pid
            workers[index].kill()
            kills.append(time.time())
            # its instances keep their slots while nobody runs them, until their leases expire
            async with store.pool.connection() as conn:
                cursor = await conn.execute(
                    "SELECT count(*) AS n FROM postgit.instances WHERE holds_slot AND lease_owner LIKE %s",
                    (f"%-{killed_pid}-%",),
                )
                assert (await cursor.fetchone())["n"] >= 1
            workers[index] = start_worker(database_url, tmp_path, 2 + round_, **env)
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
