"""Control flow under faults: workers SIGKILLed in a big ForEach, a worker frozen in one parallel branch."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections import defaultdict

from postgit import ForEach, HitEndpoint, Parallel, Sequence
from tests.support.engine import wait_finished
from tests.support.processes import start_worker
from tests.support.waiting import wait_for, wait_for_sync

ITEMS = 1000
READ_LAG = 0.5
KILL_PROOF = {"maxAttempts": 10, "initialInterval": 0.1}
"""Each kill charges the items in flight an attempt (the worker died while running them): enough for every kill."""


async def test_sigkills_during_a_foreach_repeat_only_items_in_flight_with_their_own_keys(
    service, store, database_url, http_server, tmp_path
):
    loop = ForEach(
        id="ship",
        items="{{ input.skus }}",
        concurrency=50,
        body=HitEndpoint(
            id="ship-one",
            url=f"{http_server.url}/ok/{{{{ index }}}}",
            method="POST",
            json="{{ item }}",
            retry=KILL_PROOF,
        ),
        assign_to="$.shipped",
    )
    await service.deploy("ship", loop.to_json())
    row, _ = await service.start("ship", {"skus": [f"sku-{i}" for i in range(ITEMS)]})
    env = {"POSTGIT_LEASE_SECONDS": "2"}
    workers = [start_worker(database_url, tmp_path, n, **env) for n in range(2)]
    kills: list[float] = []
    rng = random.Random(11)

    def shipped() -> int:
        return len({request.path for request in http_server.requests})

    try:
        next_index = len(workers)
        deadline = time.monotonic() + 120
        while len(kills) < 5 and shipped() < ITEMS * 0.9:
            assert time.monotonic() < deadline, f"items stopped shipping after {len(kills)} kills ({shipped()} shipped)"
            await asyncio.sleep(rng.uniform(0.3, 0.8))
            if shipped() == 0:
                continue
            # kill the worker that holds the loop (its id holds its pid), so that items in flight are cut off
            owner = (await store.get_instance(row["id"]))["lease_owner"] or ""
            holders = [n for n, worker in enumerate(workers) if f"-{worker.pid}-" in owner]
            victim = holders[0] if holders else rng.randrange(len(workers))
            workers[victim].kill()
            kills.append(time.time())
            workers[victim] = start_worker(database_url, tmp_path, next_index, **env)
            next_index += 1
        instance = await wait_finished(store, row["id"], timeout=120)
    finally:
        for worker in workers:
            worker.stop()

    assert instance["status"] == "completed", instance["error"]
    assert kills, "the test must kill workers while items are in flight"
    assert [out["body"]["path"] for out in instance["state"]["shipped"]] == [f"/ok/{i}" for i in range(ITEMS)]
    by_path: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for request in http_server.requests:
        by_path[request.path].append((request.at, request.headers["Idempotency-Key"]))
    assert set(by_path) == {f"/ok/{i}" for i in range(ITEMS)}, "every item's side effect happened"
    repeats = 0
    for path, hits in by_path.items():
        index = path.rsplit("/", 1)[1]
        assert {key for _, key in hits} == {f"{row['id']}:ship-one[{index}]"}, f"item {index} has its own stable key"
        if len(hits) > 1:
            repeats += 1
            times = [at for at, _ in hits]
            first, last = min(times) - READ_LAG, max(times)
            assert any(first <= kill <= last for kill in kills), f"item {index} repeated at {times}, kills at {kills}"
    assert repeats <= 50 * len(kills), f"{repeats} repeated items for {len(kills)} kills at concurrency 50"
    steps = await store.list_steps(row["id"])
    completed = [step for step in steps if step["status"] == "completed"]
    assert len({step["run_key"] for step in completed}) == ITEMS
    print(f"foreach chaos: {ITEMS} items, {len(kills)} kills, {repeats} repeated items")


async def test_a_worker_frozen_in_one_parallel_branch_writes_nothing_after_it_wakes(
    service, store, database_url, http_server, tmp_path
):
    flow = Sequence(
        id="root",
        children=[
            Parallel(
                id="both",
                branches={
                    "slow": HitEndpoint(id="slow", url=f"{http_server.url}/block/frozen-branch", assign_to="$.slow"),
                    "quick": HitEndpoint(id="quick", url=f"{http_server.url}/ok/quick", assign_to="$.quick"),
                },
            ),
            HitEndpoint(id="after", url=f"{http_server.url}/ok/after"),
        ],
    )
    await service.deploy("frozen-branch", flow.to_json())
    row, _ = await service.start("frozen-branch")
    frozen = start_worker(database_url, tmp_path, 0)
    rescuer = None
    try:
        assert await asyncio.to_thread(http_server.arrival("frozen-branch").wait, 20)

        async def quick_committed():
            return any(step["run_key"] == "quick" for step in await store.list_steps(row["id"]))

        await wait_for(quick_committed, what="the quick branch to commit")
        frozen.popen.send_signal(signal.SIGSTOP)
        rescuer = start_worker(database_url, tmp_path, 1)
        instance = await wait_finished(store, row["id"], timeout=30)
        assert instance["status"] == "completed", instance["error"]
        steps_before = await store.list_steps(row["id"])
        events_before = await store.events_since(row["id"])

        frozen.popen.send_signal(signal.SIGCONT)
        http_server.release("frozen-branch")  # the frozen worker's request now gets its answer
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
        assert len(http_server.hits("/ok/quick")) == 1, "the committed branch did not run again"
    finally:
        frozen.popen.send_signal(signal.SIGCONT)
        frozen.stop()
        if rescuer:
            rescuer.stop()
