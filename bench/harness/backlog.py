"""W4's backlog: many instances waiting on far-future timers, in the engine's own tables.

The timer workflow is deployed through the API (a real ``workflows`` row); its instances are inserted in bulk by
one parameterised statement, each with the suspended Sleep step a waiting instance has. Then the tables are
vacuumed and analysed and a checkpoint taken, as a long-lived database would be, so that W4 measures the backlog
and not the bulk insert's aftermath.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from harness.api import Api
from harness.database import connect

FAR_FUTURE = "2999-01-01T00:00:00+00:00"
TIMER_WORKFLOW = "w4-far-future-timers"

INSERT_WAITING = """
WITH timers AS (
    SELECT gen_random_uuid() AS id, %(due)s::timestamptz + make_interval(secs => g) AS due
    FROM generate_series(1, %(count)s) AS g
), waiting AS (
    INSERT INTO postgit.instances (id, workflow, version, status, state, current_node, node_type, node_types, run_at,
                                   wait_reason)
    SELECT id, %(workflow)s, %(version)s, 'waiting', '{"input": null}'::jsonb, 'wait', 'Sleep', '{Sleep}', due,
           'node ''wait'' waits until ' || due::text
    FROM timers
    RETURNING id, run_at
)
INSERT INTO postgit.steps (instance_id, run_key, node_id, attempt, status, params, started_at, due_at, resume)
SELECT id, 'wait', 'wait', 1, 'suspended', jsonb_build_object('until', run_at), now(), run_at,
       jsonb_build_object('until', run_at, 'data', '{}'::jsonb)
FROM waiting
"""


def maintain(url: str) -> None:
    """VACUUM ANALYZE the engine's tables and take a checkpoint, as autovacuum and time would on a live database."""
    with connect(url) as conn:
        for table in ("instances", "steps", "events"):
            conn.execute(f"VACUUM ANALYZE postgit.{table}")
        conn.execute("CHECKPOINT")


async def _deploy(api_url: str) -> int:
    async with Api(api_url) as api:
        return await api.deploy(TIMER_WORKFLOW, {"id": "wait", "type": "Sleep", "params": {"until": FAR_FUTURE}})


def insert_waiting(url: str, api_url: str, *, count: int) -> dict[str, Any]:
    """Insert ``count`` waiting instances of a deployed far-future timer workflow; what it took."""
    version = asyncio.run(_deploy(api_url))
    begin = time.perf_counter()
    with connect(url) as conn:
        params = {"due": FAR_FUTURE, "count": count, "workflow": TIMER_WORKFLOW, "version": version}
        conn.execute(INSERT_WAITING, params)
        inserted = time.perf_counter()
    maintain(url)
    with connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) AS waiting FROM postgit.instances WHERE workflow = %s AND status = 'waiting'",
            (TIMER_WORKFLOW,),
        ).fetchone()
        sizes = conn.execute(
            "SELECT pg_total_relation_size('postgit.instances') AS instances, "
            "pg_total_relation_size('postgit.steps') AS steps"
        ).fetchone()
    assert row is not None and sizes is not None
    return {
        "waiting_instances": int(row["waiting"]),
        "insert_seconds": round(inserted - begin, 1),
        "vacuum_checkpoint_seconds": round(time.perf_counter() - inserted, 1),
        "instances_table_mb": round(sizes["instances"] / 2**20, 1),
        "steps_table_mb": round(sizes["steps"] / 2**20, 1),
    }
