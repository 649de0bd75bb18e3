"""O1 and O2: the figures of running Postgit in production — schedules firing on time, and a purge under load.

O1 (schedules): ``sizes.o1_schedules`` schedules firing every second, created paused and then resumed together,
fired by a server and a worker at once (both run the scheduler, as a deployment does) for ``sizes.o1_seconds``.
Every nominal time of the window must have started exactly one instance (a start's idempotency key is the schedule
and the nominal time); a fire's lateness is its instance's ``created_at`` (the start's transaction, by the
database's clock that the scheduler also fires by) minus its nominal time.

O2 (purge under load): ``sizes.o2_finished`` finished instances past their retention (each with three completed
steps and two events, as W1 leaves them) are inserted in bulk into a database of their own; then the engine's
retention pass (:class:`postgit.engine.retention.Retention`, the code a worker runs) purges them in a separate
process, started once W1's instances are (so that it runs through W1's work-off), in the same database. W1 is then
run again once the purge has finished: the figure is W1 under the purge ÷ W1 idle, with how many instances the purge
deleted by the end of W1's work-off.

O3 (concurrency keys): W1's workflow with a concurrency key of limit 10 over 100 keys (instance ``n`` has the key
``n % 100``), started and worked off by one worker as W1 is; the figure is its steps/s ÷ W1's with one worker.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from typing import Any

import httpx

from harness.api import Api
from harness.backlog import maintain
from harness.config import Sizes
from harness.database import connect
from harness.processes import Process, base_env, start_server, start_worker
from harness.throughput import RunPaths, run_w1, start_instances, three_noops, work_off

O1_WORKFLOW = "o1-every-second"
O3_KEYS = 100
O3_LIMIT = 10
O2_WORKFLOW = "o2-long-finished"

INSERT_FINISHED = """
WITH finished AS (
    INSERT INTO postgit.instances (id, workflow, version, status, state, current_node, node_type, created_at,
                                   updated_at, finished_at)
    SELECT gen_random_uuid(), %(workflow)s, %(version)s, 'completed', '{"input": {"n": 1}}'::jsonb, NULL, NULL,
           now() - interval '61 days', now() - interval '60 days', now() - interval '60 days'
    FROM generate_series(1, %(count)s)
    RETURNING id, finished_at
), steps AS (
    INSERT INTO postgit.steps (instance_id, run_key, node_id, attempt, status, params, output, started_at,
                               finished_at)
    SELECT f.id, 'step' || n, 'step' || n, 1, 'completed', '{}'::jsonb, '{}'::jsonb, f.finished_at, f.finished_at
    FROM finished f CROSS JOIN generate_series(1, 3) AS n
)
INSERT INTO postgit.events (instance_id, kind, node_id, data)
SELECT f.id, kind, NULL, '{}'::jsonb FROM finished f CROSS JOIN unnest(ARRAY['started', 'completed']) AS kind
"""

PURGER = """
import asyncio, sys
from postgit.db.pool import open_pool
from postgit.db.store import Store
from postgit.engine.retention import Retention

async def main() -> None:
    async with await open_pool(sys.argv[1], min_size=1, max_size=1, name="o2-purger") as pool:
        print("purged", await Retention(Store(pool), 30 * 86400.0, 60.0).purge(), flush=True)

asyncio.run(main())
"""


def run_schedules(paths: RunPaths, sizes: Sizes) -> dict[str, Any]:
    """O1 once: ``sizes.o1_schedules`` every-second schedules fire for ``sizes.o1_seconds``; exactly once, how late."""
    server, url = start_server(paths.url, paths.log_dir)
    worker: Process | None = None
    try:
        names = [f"o1-{number:03d}" for number in range(sizes.o1_schedules)]
        asyncio.run(_create_paused_schedules(url, names))
        worker = start_worker(paths.url, sizes.worker, paths.log_dir, "o1-worker")
        with connect(paths.url) as conn:  # resumed together: each first fires at the same next second
            window_start = conn.execute(
                "WITH resumed AS (UPDATE postgit.schedules SET paused = false, "
                "next_fire_at = date_trunc('second', now()) + interval '2 seconds' WHERE name = ANY(%s) "
                "RETURNING next_fire_at) SELECT min(next_fire_at) AS at FROM resumed",
                (names,),
            ).fetchone()["at"]
        time.sleep(2 + sizes.o1_seconds + 1)
        with connect(paths.url) as conn:
            conn.execute("UPDATE postgit.schedules SET paused = true WHERE name = ANY(%s)", (names,))
        time.sleep(1)  # a pass under way records what it started
    finally:
        if worker is not None:
            worker.stop()
        server.stop()
    return _fires(paths.url, names, window_start, sizes.o1_seconds)


async def _create_paused_schedules(url: str, names: list[str]) -> None:
    async with Api(url) as api:
        await api.deploy(O1_WORKFLOW, {"id": "tick", "type": "Noop", "params": {}})
        async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:
            for name in names:
                body = {"name": name, "workflow": O1_WORKFLOW, "cron": "* * * * * *", "overlap": "allow_all",
                        "paused": True}  # fmt: skip
                response = await client.post("/schedules", json=body)
                if response.status_code != 201:
                    raise RuntimeError(f"creating schedule {name} answered {response.status_code}: {response.text}")


def _fires(url: str, names: list[str], window_start: Any, seconds: int) -> dict[str, Any]:
    """Per nominal time of the window: how many instances it started, and each start's lateness."""
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT f.schedule, f.nominal_at, count(i.id) AS instances, "
            "extract(epoch FROM min(i.created_at) - f.nominal_at)::float8 AS lateness "
            "FROM postgit.schedule_fires f LEFT JOIN postgit.instances i ON i.id = f.instance_id "
            "WHERE f.schedule = ANY(%s) AND f.nominal_at >= %s AND f.nominal_at < %s + make_interval(secs => %s) "
            "AND f.outcome = 'started' GROUP BY f.schedule, f.nominal_at",
            (names, window_start, window_start, seconds),
        ).fetchall()
        others = conn.execute(
            "SELECT count(*) AS n FROM postgit.schedule_fires WHERE schedule = ANY(%s) AND nominal_at >= %s "
            "AND nominal_at < %s + make_interval(secs => %s) AND outcome <> 'started'",
            (names, window_start, window_start, seconds),
        ).fetchone()["n"]
    expected = len(names) * seconds
    late = sorted(1000 * row["lateness"] for row in rows if row["lateness"] is not None)
    return {
        "schedules": len(names),
        "seconds": seconds,
        "nominal_times": expected,
        "started_once": sum(1 for row in rows if row["instances"] == 1),
        "not_started": expected - len(rows),
        "missed_or_skipped": others,
        "lateness_p50_ms": round(statistics.median(late), 1) if late else None,
        "lateness_p99_ms": round(late[min(len(late) - 1, int(0.99 * len(late)))], 1) if late else None,
        "lateness_max_ms": round(late[-1], 1) if late else None,
    }


def run_purge(paths: RunPaths, sizes: Sizes) -> dict[str, Any]:
    """O2 once, in a database of its own: W1's work-off while the retention pass purges, then W1 idle."""
    inserted = _insert_finished(paths, sizes.o2_finished)
    log = open(paths.log_dir / "o2-purger.log", "ab")  # noqa: SIM115 - closed below
    purger = None
    try:
        start = start_instances(paths, sizes, "o2-w1-purging", sizes.w1_instances)
        purger = subprocess.Popen(  # noqa: S603
            [sys.executable, "-c", PURGER, paths.url], env=base_env(paths.url), stdout=log, stderr=log
        )
        _wait_for_purge_to_begin(paths.url, sizes.o2_finished)
        under_purge = {"start": start, **work_off(paths, sizes, "o2-w1-purging", sizes.w1_instances, 1, alone=False)}
        left_after_w1 = _finished_left(paths.url)
        still_purging = purger.poll() is None
        purger.wait(sizes.timeout_seconds)
    finally:
        if purger is not None and purger.poll() is None:
            purger.kill()
            purger.wait(10)
        log.close()
    maintain(paths.url)
    idle = run_w1(paths, sizes, "o2-w1-idle", 1)
    during = under_purge["steps_per_second"]
    alone = idle["steps_per_second"]
    return {
        "finished_instances": sizes.o2_finished,
        "insert_seconds": inserted,
        "purged_while_w1_ran": sizes.o2_finished - left_after_w1,
        "purge_outlasted_w1": still_purging,
        "purger_exit_code": purger.returncode if purger is not None else None,
        "w1_purging_steps_per_second": during,
        "w1_idle_steps_per_second": alone,
        "ratio_to_idle": round(during / alone, 3) if during and alone else None,
    }


def _insert_finished(paths: RunPaths, count: int) -> float:
    async def deploy() -> int:
        server, url = start_server(paths.url, paths.log_dir)
        try:
            async with Api(url) as api:
                return await api.deploy(O2_WORKFLOW, {"id": "step1", "type": "Noop", "params": {}})
        finally:
            server.stop()

    version = asyncio.run(deploy())
    began = time.perf_counter()
    with connect(paths.url) as conn:
        conn.execute(INSERT_FINISHED, {"workflow": O2_WORKFLOW, "version": version, "count": count})
    seconds = time.perf_counter() - began
    maintain(paths.url)
    return round(seconds, 1)


def _finished_left(url: str) -> int:
    with connect(url) as conn:
        row = conn.execute("SELECT count(*) AS n FROM postgit.instances WHERE workflow = %s", (O2_WORKFLOW,)).fetchone()
    return row["n"]


def _wait_for_purge_to_begin(url: str, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while _finished_left(url) >= count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the purge deleted nothing within {timeout:.0f}s")
        time.sleep(0.05)


def run_keyed_w1(paths: RunPaths, sizes: Sizes) -> dict[str, Any]:
    """O3 once: W1 with a concurrency key of limit :data:`O3_LIMIT` over :data:`O3_KEYS` keys, one worker."""
    definition = {
        "root": three_noops(),
        "concurrency": {"key": f"{{{{ input.n % {O3_KEYS} }}}}", "limit": O3_LIMIT, "strategy": "queue"},
    }
    count = sizes.w1_instances
    start = start_instances(paths, sizes, "o3-keyed", count, definition=definition)
    result = work_off(paths, sizes, "o3-keyed", count, 1)
    return {"keys": O3_KEYS, "limit": O3_LIMIT, "start": start, **result}
