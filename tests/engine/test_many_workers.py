"""Several worker processes share 200 instances: every step's side effect happens exactly once."""

from __future__ import annotations

from collections import Counter

from postgit import HitEndpoint, Sequence
from tests.support.processes import running_workers
from tests.support.waiting import wait_for

INSTANCES = 200


async def test_two_workers_run_200_instances_each_step_once(service, store, database_url, http_server, tmp_path):
    flow = Sequence(
        id="root",
        children=[HitEndpoint(id=f"step{n}", url=f"{http_server.url}/ok/step{n}", method="POST") for n in range(3)],
    )
    await service.deploy("fanout", flow.to_json())

    async def all_completed() -> bool:
        rows = await store.list_instances(status="completed", limit=1000)
        return len(rows) == INSTANCES

    async def both_registered() -> bool:
        return len(await store.list_live_workers(30)) == 2

    with running_workers(database_url, tmp_path, count=2, POSTGIT_WORKER_CONCURRENCY="20") as workers:
        await wait_for(both_registered, what="both workers to register")
        ids = [(await service.start("fanout", {"n": n}))[0]["id"] for n in range(INSTANCES)]
        await wait_for(all_completed, timeout=120, interval=0.2, what="all instances to complete")
        assert all(worker.alive() for worker in workers)

    keys = Counter(r.headers["Idempotency-Key"] for r in http_server.requests)
    expected = {f"{i}:step{n}" for i in ids for n in range(3)}
    assert set(keys) == expected
    repeated = {key: count for key, count in keys.items() if count > 1}
    assert not repeated, f"side effects repeated with no worker dying: {repeated}"
    workers_used = {s["worker_id"] for i in ids for s in await store.list_steps(i)}
    assert len(workers_used) == 2, "both workers should have taken part"
