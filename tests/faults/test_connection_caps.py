"""``POSTGIT_DB_POOL_MAX`` caps the connections a server and a worker open, as the README counts them.

A server opens at most its pool's size; a worker its pool's size plus its LISTEN connection. (Each also opens one
for the migration while it starts, closed before its pool opens.) The test drives both hard with the caps set low,
and watches ``pg_stat_activity``, where every connection shows under its program's ``application_name``.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

import httpx
import psycopg
from psycopg.conninfo import conninfo_to_dict

from tests.support.processes import running_workers
from tests.support.server import running_server
from tests.support.waiting import wait_for

SERVER_CAP = 3
WORKER_CAP = 2
INSTANCES = 60
STEPS = {
    "id": "root",
    "type": "Sequence",
    "children": [{"id": f"s{i}", "type": "Shout", "params": {"text": "hi"}} for i in range(3)],
}


class Sampler:
    """Counts each program's connections to one database, over and over in a thread, keeping the peak."""

    def __init__(self, database_url: str):
        self.database_url = database_url
        self.peaks: Counter[str] = Counter()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        dbname = conninfo_to_dict(self.database_url)["dbname"]
        with psycopg.connect(self.database_url, autocommit=True, application_name="sampler") as conn:
            while not self._stop.is_set():
                rows = conn.execute(
                    "SELECT application_name, count(*) FROM pg_stat_activity WHERE datname = %s GROUP BY 1",
                    (dbname,),
                ).fetchall()
                for name, count in rows:
                    self.peaks[name] = max(self.peaks[name], count)
                self.samples += 1
                self._stop.wait(0.005)


async def test_a_worker_and_a_server_stay_within_their_caps_under_load(database_url, tmp_path):
    with (
        running_server(database_url, tmp_path, POSTGIT_DB_POOL_MAX=str(SERVER_CAP)) as (_, url),
        running_workers(
            database_url, tmp_path, POSTGIT_DB_POOL_MAX=str(WORKER_CAP), POSTGIT_WORKER_CONCURRENCY="50"
        ) as workers,
        Sampler(database_url) as sampler,
    ):
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            assert (await client.post("/workflows", json={"name": "w", "definition": STEPS})).status_code == 201
            starts = await asyncio.gather(*(client.post("/workflows/w/instances", json={}) for _ in range(INSTANCES)))
            assert all(response.status_code == 201 for response in starts), [r.text for r in starts if r.is_error]
            ids = [response.json()["id"] for response in starts]

            async def all_completed() -> bool:
                shown = await asyncio.gather(*(client.get(f"/instances/{instance_id}") for instance_id in ids))
                return all(response.json()["status"] == "completed" for response in shown)

            await wait_for(all_completed, timeout=60, interval=0.2, what=f"{INSTANCES} instances to complete")
        assert all(worker.alive() for worker in workers)

    assert sampler.samples > 10
    assert 1 <= sampler.peaks["postgit-server"] <= SERVER_CAP, sampler.peaks
    assert 1 <= sampler.peaks["postgit-worker"] <= WORKER_CAP + 1, sampler.peaks  # + its LISTEN connection
