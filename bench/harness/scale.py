"""S1: more than one of everything on one PostgreSQL — two servers taking starts at once, three workers working off.

Phases, as W1's (:mod:`harness.throughput`):

1. start: two ``postgit-server`` processes; W1's workflow is deployed through the first, and ``sizes.w1_instances``
   single starts go half through each server at once (as many requests in flight in all as W1's start); the
   servers are stopped and the instances held;
2. work-off: three worker processes register, the instances are released at once and worked off.

Then the steps table is read for what ran twice: a step with more than one attempt, or an instance without its
three completed steps; and the tables that grow with instances are weighed before and after, per million instances.
The starts/s through two servers and W1 with three workers are set beside W1's own figures (one server, one and two
workers) by :mod:`harness.report`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from harness.api import Api
from harness.config import Sizes
from harness.database import connect
from harness.processes import Process, cpu_seconds, start_server
from harness.throughput import RunPaths, three_noops, work_off

SERVERS = 2
WORKERS = 3


def run_scale(paths: RunPaths, sizes: Sizes, name: str = "s1") -> dict[str, Any]:
    """S1 once: starts through ``SERVERS`` servers, work-off by ``WORKERS`` workers, and what ran twice."""
    count = sizes.w1_instances
    before = _table_bytes(paths.url)
    start = _start_through_servers(paths, sizes, name, count)
    work = work_off(paths, sizes, name, count, WORKERS)
    after = _table_bytes(paths.url)
    growth = {
        table: round((after[table] - before[table]) * 1_000_000 / count / 2**20) for table in before
    }  # MiB per million instances
    return {
        "servers": SERVERS,
        "start": start,
        **work,
        "ran_twice": _ran_twice(paths.url, name),
        "table_mib_per_million_instances": growth,
    }


def _table_bytes(url: str) -> dict[str, int]:
    """The size of each table that grows with instances, its indexes and TOAST included."""
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT relname AS name, pg_total_relation_size(c.oid) AS bytes FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'postgit' AND c.relname IN ('instances', 'steps', 'events', 'runs')"
        ).fetchall()
    return {row["name"]: row["bytes"] for row in rows}


def _start_through_servers(paths: RunPaths, sizes: Sizes, name: str, count: int) -> dict[str, Any]:
    servers: list[Process] = []
    try:
        urls = []
        for _ in range(SERVERS):
            server, url = start_server(paths.url, paths.log_dir)
            servers.append(server)
            urls.append(url)
        shares = [count // SERVERS + (1 if n < count % SERVERS else 0) for n in range(SERVERS)]
        in_flight = max(1, min(sizes.start_concurrency, count) // SERVERS)

        async def go() -> tuple[int, float]:
            apis = [Api(url) for url in urls]
            try:
                await apis[0].deploy(name, three_noops())
                offsets = [sum(shares[:n]) for n in range(SERVERS)]
                began = time.perf_counter()
                batches = await asyncio.gather(
                    *(
                        api.start_many(name, share, in_flight, lambda index, offset=offset: {"n": offset + index})
                        for api, share, offset in zip(apis, shares, offsets, strict=True)
                    )
                )
                return sum(len(batch.started) for batch in batches), time.perf_counter() - began
            finally:
                for api in apis:
                    await api.__aexit__(None, None, None)

        before = [cpu_seconds(server.pid) or 0.0 for server in servers]
        started, seconds = asyncio.run(go())
        server_cpu = sum((cpu_seconds(server.pid) or 0.0) - cpu for server, cpu in zip(servers, before, strict=True))
    finally:
        for server in servers:
            server.stop()
    with connect(paths.url) as conn:
        conn.execute(
            "UPDATE postgit.instances SET run_at = now() + interval '1 day' WHERE workflow = %s AND status = 'pending'",
            (name,),
        )
    return {
        "instances": started,
        "seconds": round(seconds, 3),
        "instances_per_second": round(started / seconds, 1) if seconds > 0 else None,
        "in_flight": in_flight * SERVERS,
        "server_cpu_ms_per_start": round(1000 * server_cpu / started, 3) if started else None,
    }


def _ran_twice(url: str, name: str) -> dict[str, int]:
    """Steps with more than one attempt, and instances without exactly their three completed steps."""
    with connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE s.attempt > 1) AS repeated_attempts, "
            "count(DISTINCT i.id) FILTER (WHERE i.status <> 'completed') AS not_completed "
            "FROM postgit.instances i LEFT JOIN postgit.steps s ON s.instance_id = i.id WHERE i.workflow = %s",
            (name,),
        ).fetchone()
        short = conn.execute(
            "SELECT count(*) AS n FROM (SELECT i.id FROM postgit.instances i "
            "LEFT JOIN postgit.steps s ON s.instance_id = i.id AND s.status = 'completed' WHERE i.workflow = %s "
            "GROUP BY i.id HAVING count(s.node_id) <> 3) wrong",
            (name,),
        ).fetchone()
    return {
        "repeated_attempts": row["repeated_attempts"],
        "not_completed": row["not_completed"],
        "instances_without_three_steps": short["n"],
    }
