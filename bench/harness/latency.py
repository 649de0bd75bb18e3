"""W2 (start latency) and W3 (timer lateness), with one server and one idle worker running.

Both read the wall-clock time at which a ``NoopRecord`` handler began from its step's output, and compare it with
the client's ``time.time()`` when the start request's response arrived (the same machine, the same clock).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg
from psycopg.rows import dict_row

from harness.api import Api, Started
from harness.config import Sizes
from harness.database import HARNESS_APP, MARKER
from harness.stats import latency_summary_ms

SETTLE_SECONDS = 0.01
POLL_SECONDS = 0.005
IDLE_GAP_SECONDS = 0.02
INSTANCE_TIMEOUT = 10.0

RECORD_ONE = {"id": "first", "type": "NoopRecord", "params": {}}


def sleep_then_record(seconds: float) -> dict[str, Any]:
    """W3's definition: a durable Sleep, then a NoopRecord step."""
    return {
        "id": "root",
        "type": "Sequence",
        "children": [
            {"id": "wait", "type": "Sleep", "params": {"seconds": seconds}},
            {"id": "after", "type": "NoopRecord", "params": {}},
        ],
    }


async def harness_connection(url: str) -> psycopg.AsyncConnection[dict[str, Any]]:
    """An async harness connection: autocommit, dict rows, named as the harness's."""
    return await psycopg.AsyncConnection.connect(
        url, autocommit=True, row_factory=dict_row, application_name=HARNESS_APP
    )


async def recorded_time(conn: psycopg.AsyncConnection[dict[str, Any]], instance_id: str, node_id: str) -> float:
    """Wait until the instance completed; the time its ``node_id`` handler recorded."""
    deadline = time.monotonic() + INSTANCE_TIMEOUT
    await asyncio.sleep(SETTLE_SECONDS)
    while True:
        cursor = await conn.execute(
            f"SELECT {MARKER} i.status, s.output FROM postgit.instances i "
            "LEFT JOIN postgit.steps s ON s.instance_id = i.id AND s.node_id = %s AND s.status = 'completed' "
            "WHERE i.id = %s",
            (node_id, instance_id),
        )
        row = await cursor.fetchone()
        if row is not None and row["status"] == "completed" and row["output"] is not None:
            return float(row["output"]["t"])
        if row is not None and row["status"] in ("failed", "cancelled"):
            raise RuntimeError(f"instance {instance_id} {row['status']}")
        if time.monotonic() > deadline:
            status = row["status"] if row is not None else "missing"
            raise RuntimeError(f"instance {instance_id} did not complete within {INSTANCE_TIMEOUT:.0f}s ({status})")
        await asyncio.sleep(POLL_SECONDS)


async def w2_start_latency(url: str, api_url: str, sizes: Sizes) -> dict[str, Any]:
    """Start instances one at a time with the worker idle; latency from start return to the handler beginning.

    Each instance is waited for (and a short idle gap left) before the next is started, so every start finds the
    worker idle. The first ``sizes.w2_warmup`` instances are not counted.
    """
    name = "w2-start-latency"
    latencies: list[float] = []
    from_sent: list[float] = []
    round_trips: list[float] = []
    async with Api(api_url) as api:
        await api.deploy(name, RECORD_ONE)
        conn = await harness_connection(url)
        try:
            for index in range(sizes.w2_warmup + sizes.w2_instances):
                started = await api.start(name)
                handler_began = await recorded_time(conn, started.id, "first")
                if index >= sizes.w2_warmup:
                    latencies.append(handler_began - started.returned_at)
                    from_sent.append(handler_began - started.sent_at)
                    round_trips.append(started.returned_at - started.sent_at)
                await asyncio.sleep(IDLE_GAP_SECONDS)
        finally:
            await conn.close()
    return {
        "instances": len(latencies),
        "warmup": sizes.w2_warmup,
        **latency_summary_ms(latencies),
        "from_request_sent": latency_summary_ms(from_sent),
        "start_request": latency_summary_ms(round_trips),
    }


async def w3_timer_lateness(url: str, api_url: str, sizes: Sizes) -> dict[str, Any]:
    """Start instances back to back, each sleeping then recording; lateness against (start return + sleep)."""
    name = "w3-timer-lateness"
    async with Api(api_url) as api:
        await api.deploy(name, sleep_then_record(sizes.w3_sleep_seconds))
        begin = time.perf_counter()
        started = await api.start_back_to_back(name, sizes.w3_instances)
        start_seconds = time.perf_counter() - begin
    recorded = await _wait_for_all(url, name, started, sizes)
    lateness = [recorded[item.id] - (item.returned_at + sizes.w3_sleep_seconds) for item in started]
    return {
        "instances": len(lateness),
        "sleep_seconds": sizes.w3_sleep_seconds,
        "start_seconds": round(start_seconds, 3),
        "starts_per_second": round(len(started) / start_seconds, 1) if start_seconds > 0 else None,
        **latency_summary_ms(lateness),
    }


async def _wait_for_all(url: str, name: str, started: list[Started], sizes: Sizes) -> dict[str, float]:
    deadline = time.monotonic() + sizes.w3_sleep_seconds + sizes.timeout_seconds
    conn = await harness_connection(url)
    try:
        while True:
            cursor = await conn.execute(
                f"SELECT {MARKER} count(*) FILTER (WHERE status = 'completed') AS completed, "
                "count(*) FILTER (WHERE status IN ('failed', 'cancelled')) AS failed "
                "FROM postgit.instances WHERE workflow = %s",
                (name,),
            )
            row = await cursor.fetchone()
            assert row is not None
            if row["failed"]:
                raise RuntimeError(f"{row['failed']} instances of {name} failed")
            if row["completed"] >= len(started):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name}: {row['completed']} of {len(started)} instances completed in time")
            await asyncio.sleep(0.1)
        cursor = await conn.execute(
            f"SELECT {MARKER} s.instance_id::text AS id, (s.output->>'t')::float8 AS t FROM postgit.steps s "
            "JOIN postgit.instances i ON i.id = s.instance_id "
            "WHERE i.workflow = %s AND s.node_id = 'after' AND s.status = 'completed'",
            (name,),
        )
        return {row["id"]: row["t"] for row in await cursor.fetchall()}
    finally:
        await conn.close()
