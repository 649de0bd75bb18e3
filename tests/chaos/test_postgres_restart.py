"""PostgreSQL restarts under load: the server and the workers reconnect on their own, and nothing is lost.

The database is an embedded PostgreSQL this test starts and restarts itself, never the machine's shared server.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx
import pytest

from postgit import HitEndpoint, Sequence, Sleep
from postgit.db import Store, migrate, open_pool
from postgit.plugins import load_registry
from postgit.service import WorkflowService
from postgit_cli.embedded_pg import EmbeddedPostgres
from tests.support.ports import free_port
from tests.support.processes import start_worker
from tests.support.server import running_server
from tests.support.waiting import wait_for

INSTANCES = 150
RESTARTS = 2


@pytest.fixture
def own_postgres():
    """An embedded PostgreSQL on a fixed port, so that a restart comes back at the same address."""
    base = Path(tempfile.mkdtemp(prefix="postgit-restart-"))
    pg = EmbeddedPostgres(base / "pg", port=free_port(), database="restart")
    try:
        yield pg.start()
    finally:
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)


async def test_server_and_workers_survive_postgres_restarts(own_postgres, http_server, tmp_path):
    url = own_postgres.url
    await migrate(url)
    flow = Sequence(
        id="root",
        children=[
            HitEndpoint(id="a", url=f"{http_server.url}/ok/a", method="POST"),
            Sleep(id="nap", seconds=1),
            HitEndpoint(id="b", url=f"{http_server.url}/ok/b", method="POST"),
        ],
    )
    workers = [start_worker(url, tmp_path, n, POSTGIT_LEASE_SECONDS="3") for n in range(2)]
    restarts: list[tuple[float, float]] = []
    try:
        with running_server(url, tmp_path) as (_, api):
            async with httpx.AsyncClient(base_url=api, timeout=10) as client:
                deployed = await client.post("/workflows", json={"name": "restart", "definition": flow.to_json()})
                assert deployed.status_code == 201, deployed.text
                ids = []
                for n in range(INSTANCES):
                    response = await client.post("/workflows/restart/instances", json={"input": {"n": n}})
                    ids.append(response.json()["id"])
                # Each restart waits for its share of the side effects, so that restarts fall while work is in
                # flight however fast the workers run, and no restart waits for work that has already finished.
                expected_requests = INSTANCES * 2
                for restart in range(RESTARTS):
                    share = expected_requests * (restart + 1) // (RESTARTS + 1)

                    async def progressed(share: int = share) -> bool:
                        return len(http_server.requests) >= share

                    await wait_for(progressed, timeout=60, what="steps to run between restarts")
                    began = time.time()
                    await asyncio.to_thread(own_postgres.stop)
                    await asyncio.to_thread(own_postgres.start)
                    restarts.append((began, time.time()))

                async def api_back() -> bool:
                    try:
                        return (await client.get("/health")).status_code == 200
                    except httpx.HTTPError:
                        return False

                await wait_for(api_back, timeout=30, what="the API to reconnect")
                late = await client.post("/workflows/restart/instances", json={"input": {"late": True}})
                assert late.status_code == 201, late.text
                ids.append(late.json()["id"])

                async def all_completed() -> bool:
                    listed = await client.get("/instances", params={"status": "completed", "limit": 500})
                    return listed.status_code == 200 and len(listed.json()["items"]) == len(ids)

                await wait_for(all_completed, timeout=120, interval=0.5, what="every instance to complete")
        assert all(worker.alive() for worker in workers), "workers reconnect without a restart of their own"
    finally:
        for worker in workers:
            worker.stop()

    by_key: dict[str, list[float]] = defaultdict(list)
    for request in http_server.requests:
        by_key[request.headers["Idempotency-Key"]].append(request.at)
    assert set(by_key) == {f"{i}:{node}" for i in ids for node in ("a", "b")}, "every step's side effect happened"
    repeats = {key: times for key, times in by_key.items() if len(times) > 1}
    print(f"postgres restarts: {len(ids)} instances, {RESTARTS} restarts, {len(repeats)} repeated steps")
    for key, times in repeats.items():
        if len(times) > 1:  # a repeat is allowed only for a step in flight while the database was down
            instance_id = key.split(":")[0]
            told = [line for worker in workers for line in worker.output().splitlines() if instance_id in line]
            assert any(min(times) - 1 <= end and began <= max(times) for began, end in restarts), (
                key,
                times,
                restarts,
                told,
            )

    pool = await open_pool(url, min_size=1, max_size=1)
    try:
        service = WorkflowService(Store(pool), load_registry())
        for instance_id in ids:
            steps = (await service.get_instance(instance_id))["steps"]
            completed = [s["node_id"] for s in steps if s["status"] == "completed"]
            assert completed == ["a", "nap", "b"], (instance_id, completed)
    finally:
        await pool.close()
