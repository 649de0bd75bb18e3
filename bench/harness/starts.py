"""The batch start rate: instances started with ``POST /workflows/{name}/instances/batch``, 1,000 per request.

A ``postgit-server`` is started and W1's workflow deployed under a name of its own; then, ``sizes.rounds`` times,
``sizes.batch_instances`` instances are started in batches of ``sizes.batch_size`` with ``sizes.batch_in_flight``
requests outstanding (instances/s = instances ÷ first request to last response), and the median round counts.
No worker runs meanwhile; the instances are deleted afterwards, so the workloads after it find the tables as before.
(The single start rate is W1's, measured as it starts its instances: :mod:`harness.throughput`.)
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from harness.api import Api
from harness.config import Sizes
from harness.database import connect
from harness.processes import cpu_seconds, machine_busy_seconds, start_server
from harness.throughput import RunPaths, three_noops

WORKFLOW = "batch-starts"


def run_batch_starts(paths: RunPaths, sizes: Sizes) -> dict[str, Any]:
    """Measure the batch start rate ``sizes.rounds`` times; the median round, with every round's rate."""
    server, url = start_server(paths.url, paths.log_dir)
    rounds: list[dict[str, Any]] = []
    try:

        async def go() -> None:
            async with Api(url) as api:
                await api.deploy(WORKFLOW, three_noops())
                for _ in range(sizes.rounds):
                    server_before = cpu_seconds(server.pid) or 0.0
                    client_before = time.process_time()
                    busy_before, total_before = machine_busy_seconds()
                    batch = await api.start_batches(
                        WORKFLOW, sizes.batch_instances, sizes.batch_size, sizes.batch_in_flight
                    )
                    busy, total = machine_busy_seconds()
                    server_cpu = (cpu_seconds(server.pid) or 0.0) - server_before
                    seconds = batch.seconds
                    rounds.append(
                        {
                            "instances": len(batch.started),
                            "seconds": round(seconds, 3),
                            "instances_per_second": round(batch.per_second, 1),
                            "batch_size": sizes.batch_size,
                            "in_flight": batch.in_flight,
                            "server_cpu_percent": _percent(server_cpu, seconds),
                            "server_cpu_ms_per_start": round(1000 * server_cpu / len(batch.started), 4),
                            "client_cpu_percent": _percent(time.process_time() - client_before, seconds),
                            "machine_busy_percent": _percent(busy - busy_before, total - total_before),
                        }
                    )

        asyncio.run(go())
    finally:
        server.stop()
    with connect(paths.url) as conn:
        conn.execute(
            "DELETE FROM postgit.events WHERE instance_id IN (SELECT id FROM postgit.instances WHERE workflow = %s)",
            (WORKFLOW,),
        )
        conn.execute("DELETE FROM postgit.instances WHERE workflow = %s", (WORKFLOW,))
    ordered = sorted(rounds, key=lambda one: one["instances_per_second"])
    return {**ordered[(len(ordered) - 1) // 2], "rounds": [one["instances_per_second"] for one in rounds]}


def _percent(part: float, whole: float) -> float | None:
    return round(100 * part / whole, 1) if whole > 0 else None
