"""F3: event delivery latency, with one server and one idle worker running (as W2).

Every instance is ``Sequence[WaitForEvent("go"), NoopRecord]``. All are started first and left until each waits
(instance ``waiting``, its WaitForEvent step ``suspended``); then, one instance at a time, the event is sent through
``POST /instances/{id}/events`` and the instance waited for, with a short quiet gap before the next, so that every
event finds the worker idle. Latency = the NoopRecord handler's ``time.time()`` - the client's ``time.time()`` when
the event request's response arrived (the same machine, the same clock).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg

from harness.api import Api
from harness.config import Sizes
from harness.database import MARKER
from harness.latency import IDLE_GAP_SECONDS, harness_connection, recorded_time
from harness.stats import latency_summary_ms

EVENT = "go"
POLL_SECONDS = 0.02

WAIT_THEN_RECORD = {
    "id": "root",
    "type": "Sequence",
    "children": [
        {"id": "wait", "type": "WaitForEvent", "params": {"event": EVENT}},
        {"id": "after", "type": "NoopRecord", "params": {}},
    ],
}

WAITING = (
    f"SELECT {MARKER} i.id::text AS id, i.status, s.status AS step_status FROM postgit.instances i "
    "LEFT JOIN postgit.steps s ON s.instance_id = i.id AND s.run_key = 'wait' AND s.status = 'suspended' "
    "WHERE i.id = ANY(%s::uuid[])"
)


async def _wait_until_waiting(conn: psycopg.AsyncConnection[dict[str, Any]], ids: list[str], seconds: float) -> None:
    """Wait up to ``seconds`` until every instance in ``ids`` is ``waiting`` with its WaitForEvent step suspended."""
    deadline = time.monotonic() + seconds
    while True:
        cursor = await conn.execute(WAITING, (ids,))
        rows = await cursor.fetchall()
        finished = [row for row in rows if row["status"] in ("completed", "failed", "cancelled")]
        if finished:
            raise RuntimeError(f"instance {finished[0]['id']} is {finished[0]['status']} before its event was sent")
        ready = sum(1 for row in rows if row["status"] == "waiting" and row["step_status"] == "suspended")
        if ready == len(ids):
            return
        if time.monotonic() > deadline:
            statuses = sorted({(row["status"], row["step_status"]) for row in rows}, key=str)
            raise RuntimeError(f"{ready} of {len(ids)} instances waiting after {seconds:.0f}s; seen {statuses}")
        await asyncio.sleep(POLL_SECONDS)


async def f3_event_latency(url: str, api_url: str, sizes: Sizes) -> dict[str, Any]:
    """Send each waiting instance its event, one at a time; latency from the send's return to the next handler.

    The first ``sizes.f3_warmup`` instances are not counted.
    """
    name = "f3-event-latency"
    latencies: list[float] = []
    from_sent: list[float] = []
    round_trips: list[float] = []
    async with Api(api_url) as api:
        await api.deploy(name, WAIT_THEN_RECORD)
        started = await api.start_back_to_back(name, sizes.f3_warmup + sizes.f3_instances)
        conn = await harness_connection(url)
        try:
            await _wait_until_waiting(conn, [item.id for item in started], sizes.timeout_seconds)
            await asyncio.sleep(IDLE_GAP_SECONDS)
            for index, instance in enumerate(started):
                await _wait_until_waiting(conn, [instance.id], sizes.timeout_seconds)
                sent = await api.send_event(instance.id, EVENT, {"n": index}, event_id=f"{EVENT}-{instance.id}")
                handler_began = await recorded_time(conn, instance.id, "after")
                if index >= sizes.f3_warmup:
                    latencies.append(handler_began - sent.returned_at)
                    from_sent.append(handler_began - sent.sent_at)
                    round_trips.append(sent.returned_at - sent.sent_at)
                await asyncio.sleep(IDLE_GAP_SECONDS)
        finally:
            await conn.close()
    return {
        "instances": len(latencies),
        "warmup": sizes.f3_warmup,
        **latency_summary_ms(latencies),
        "from_request_sent": latency_summary_ms(from_sent),
        "event_request": latency_summary_ms(round_trips),
    }
