"""Chaos: running worker processes SIGKILLed under load. Every instance completes; repeats only for steps in flight.

``POSTGIT_CHAOS_INSTANCES`` raises the load for a longer soak (default 1000, run in CI).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import defaultdict

from postgit import HitEndpoint, Sequence
from tests.support.processes import start_worker
from tests.support.waiting import wait_for

INSTANCES = int(os.environ.get("POSTGIT_CHAOS_INSTANCES", "1000"))
STEPS = 3
WORKERS = 3
READ_LAG = 0.5


async def test_random_sigkills_lose_nothing_and_repeat_only_in_flight_steps(
    service, store, route, http_server, tmp_path
):
    flow = Sequence(
        id="root",
        children=[
            # each kill charges the steps in flight an attempt (the worker died while running them)
            HitEndpoint(
                id=f"s{n}",
                url=f"{http_server.url}/ok/s{n}",
                method="POST",
                json={"n": n},
                retry={"maxAttempts": 10, "initialInterval": 0.1},
            )
            for n in range(STEPS)
        ],
    )
    await service.deploy("chaos", flow.to_json())
    ids = [(await service.start("chaos", {"i": i}))[0]["id"] for i in range(INSTANCES)]
    # a lease long enough that a busy two-core machine never lets one expire under a live worker
    env = {"POSTGIT_WORKER_CONCURRENCY": "50", "POSTGIT_LEASE_SECONDS": "5", **route.env}
    workers = [start_worker(route.url, tmp_path, n, **env) for n in range(WORKERS)]
    kills: list[float] = []
    rng = random.Random(7)

    async def completed() -> int:
        rows = await store.list_instances(status="completed", limit=INSTANCES + 1)
        return len(rows) == INSTANCES

    try:
        deadline = time.monotonic() + 240
        next_index = WORKERS
        while not await completed():
            assert time.monotonic() < deadline, f"not all instances completed after {len(kills)} kills"
            await asyncio.sleep(rng.uniform(1.0, 2.0))
            # a worker that is running steps, not one still starting up
            running = [n for n, worker in enumerate(workers) if "started with node types" in worker.output()]
            if not running:
                continue
            victim = rng.choice(running)
            workers[victim].kill()
            kills.append(time.time())  # after the victim is dead: it sent nothing later
            workers[victim] = start_worker(route.url, tmp_path, next_index, **env)
            next_index += 1
            if len(kills) >= 10:
                break
        await wait_for(completed, timeout=120, interval=0.2, what="every instance to complete")
    finally:
        for worker in workers:
            worker.stop()

    assert kills, "the test must kill workers while work is in flight"
    by_key: dict[str, list[float]] = defaultdict(list)
    for request in http_server.requests:
        by_key[request.headers["Idempotency-Key"]].append(request.at)
    expected = {f"{i}:s{n}" for i in ids for n in range(STEPS)}
    assert set(by_key) == expected, "every step's side effect happened"
    repeats = {key: times for key, times in by_key.items() if len(times) > 1}
    for key, times in repeats.items():
        # the server may read a request a moment after its sender died: allow it that moment
        first, last = min(times) - READ_LAG, max(times)
        assert any(first <= kill <= last for kill in kills), (
            f"{key} repeated at {times} with no kill while it was in flight (kills at {kills})"
        )
    statuses = {row["status"] for row in await store.list_instances(limit=INSTANCES + 1)}
    assert statuses == {"completed"}
    print(f"chaos: {INSTANCES} instances, {len(kills)} kills, {len(repeats)} repeated steps")
