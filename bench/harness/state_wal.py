"""S2: what a step writes when the instance's state is large: WAL per step with a 5 MB state and with a 5 KB state.

Two workflows of the same shape: steps of the bench plugin's ``Blob`` grow the state (six of 850,000 bytes, or
one of 5,000), a ``WaitForEvent`` holds every instance, then :data:`STEPS` steps each write a 1,000-byte output to
the state (``$.out``). Once every instance waits, the harness notes PostgreSQL's WAL position, sends the event by
key (every instance takes it), waits until all have completed, and notes the position again: WAL per step is the
difference over the steps after the wait (the event's delivery and each instance's completion included, as alike in
both). Target: the large state's figure at most twice the small one's.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from harness.api import Api
from harness.config import Sizes
from harness.database import connect
from harness.processes import Process, start_server, start_worker
from harness.throughput import RunPaths

STEPS = 10
"""Steps after the wait, each writing a 1,000-byte output to the state."""
OUTPUT_BYTES = 1_000
STATES = {"large": (6, 850_000), "small": (1, 5_000)}
"""Per case: how many Blob steps grow the state, of how many bytes each."""


def definition(blobs: int, blob_bytes: int, key: str) -> dict[str, Any]:
    """Grow the state, wait for the event ``go`` with ``key``, then :data:`STEPS` small writes."""
    children: list[dict[str, Any]] = [
        {"id": f"grow{n}", "type": "Blob", "params": {"bytes": blob_bytes}, "assignTo": f"$.grown{n}"}
        for n in range(blobs)
    ]
    children.append({"id": "hold", "type": "WaitForEvent", "params": {"event": "go", "key": key}})
    children += [
        {"id": f"write{n}", "type": "Blob", "params": {"bytes": OUTPUT_BYTES}, "assignTo": "$.out"}
        for n in range(STEPS)
    ]
    return {"id": "root", "type": "Sequence", "children": children}


def run_state_wal(paths: RunPaths, sizes: Sizes) -> dict[str, Any]:
    """Both cases, one after the other, each with fresh instances; their WAL per step and the ratio."""
    server, url = start_server(paths.url, paths.log_dir)
    worker: Process | None = None
    try:
        worker = start_worker(paths.url, sizes.worker, paths.log_dir, "s2-worker")
        cases = {name: _case(paths, url, name, *shape, sizes) for name, shape in STATES.items()}
    finally:
        if worker is not None:
            worker.stop()
        server.stop()
    large, small = cases["large"]["wal_bytes_per_step"], cases["small"]["wal_bytes_per_step"]
    return {**cases, "steps_per_instance": STEPS, "ratio": round(large / small, 2) if small else None}


def _case(paths: RunPaths, url: str, name: str, blobs: int, blob_bytes: int, sizes: Sizes) -> dict[str, Any]:
    workflow = f"s2-{name}"
    count = sizes.s2_instances

    async def start() -> None:
        async with Api(url) as api:
            await api.deploy(workflow, definition(blobs, blob_bytes, workflow))
            for _ in range(count):
                await api.start(workflow)

    asyncio.run(start())
    _wait_for(paths.url, workflow, "waiting", count, sizes.timeout_seconds)
    with connect(paths.url) as conn:
        before = conn.execute("SELECT pg_current_wal_lsn() AS lsn").fetchone()["lsn"]
    response = httpx.post(f"{url}/events", json={"name": "go", "key": workflow}, timeout=30.0)
    response.raise_for_status()
    _wait_for(paths.url, workflow, "completed", count, sizes.timeout_seconds)
    with connect(paths.url) as conn:
        wal = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)::bigint AS bytes", (before,)).fetchone()
        state_bytes = conn.execute(
            "SELECT avg(octet_length(postgit.full_state(id, state, has_state_parts)::text))::bigint AS bytes "
            "FROM postgit.instances WHERE workflow = %s",
            (workflow,),
        ).fetchone()["bytes"]
    steps = count * STEPS
    return {
        "instances": count,
        "state_bytes": int(state_bytes),
        "wal_bytes": int(wal["bytes"]),
        "wal_bytes_per_step": round(int(wal["bytes"]) / steps),
    }


def _wait_for(url: str, workflow: str, status: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with connect(url) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FILTER (WHERE status = %s) AS n, count(*) FILTER (WHERE status IN ('failed', "
                "'cancelled')) AS failed FROM postgit.instances WHERE workflow = %s",
                (status, workflow),
            ).fetchone()
            if row["failed"]:
                raise RuntimeError(f"{row['failed']} instances of {workflow} failed; see the logs in {url}")
            if row["n"] >= count:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{workflow}: {row['n']} of {count} instances {status} after {timeout:.0f}s")
            time.sleep(0.1)
