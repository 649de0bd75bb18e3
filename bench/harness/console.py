"""C1: the console's own queries at scale — the instances page and its filters over W4's million instances.

After W4, a ``postgit-server`` is started on W4's database (1,000,000 waiting instances of one workflow, plus the
instances W4's rounds ran). The instances page (``GET /ui/instances``: counts per status, the first page of 50 by
keyset) is requested with each filter a user reaches for — none, a status, a workflow, a time range, an id, an
idempotency key, and combinations that match nothing — ``sizes.c1_requests`` times each, one at a time, after two
untimed requests. The figure is the slowest filter's p95 (target: ≤ 100 ms).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from harness.backlog import TIMER_WORKFLOW
from harness.config import Sizes
from harness.database import connect
from harness.processes import start_server
from harness.stats import latency_summary_ms
from harness.throughput import RunPaths

WARMUP = 2


def run_console(paths: RunPaths, sizes: Sizes) -> dict[str, Any]:
    """C1 once, on ``paths``'s database (W4's): the instances page's latency per filter."""
    with connect(paths.url) as conn:
        total = conn.execute("SELECT count(*) AS n FROM postgit.instances").fetchone()["n"]
        some = conn.execute("SELECT id FROM postgit.instances ORDER BY created_at LIMIT 1").fetchone()["id"]
    now = datetime.now(UTC)
    hour_ago = (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    filters = {
        "none": {},
        "status waiting": {"status": "waiting"},
        "status failed (none)": {"status": "failed"},
        "workflow": {"workflow": TIMER_WORKFLOW},
        "workflow + status completed (none)": {"workflow": TIMER_WORKFLOW, "status": "completed"},
        "last hour": {"from": hour_ago},
        "id": {"id": str(some)},
        "idempotency key (none)": {"key": "no-such-key"},
    }
    server, url = start_server(paths.url, paths.log_dir)
    measured: dict[str, dict[str, Any]] = {}
    try:
        with httpx.Client(base_url=url, timeout=60.0) as client:
            for label, params in filters.items():
                timings = []
                for number in range(WARMUP + sizes.c1_requests):
                    began = time.perf_counter()
                    response = client.get("/ui/instances", params=params)
                    elapsed = time.perf_counter() - began
                    if response.status_code != 200:
                        raise RuntimeError(f"C1: /ui/instances {params} answered {response.status_code}")
                    if number >= WARMUP:
                        timings.append(elapsed)
                measured[label] = latency_summary_ms(timings)
    finally:
        server.stop()
    worst = max(measured.values(), key=lambda figures: figures["p95_ms"])
    return {
        "instances": total,
        "requests_per_filter": sizes.c1_requests,
        "filters": measured,
        "worst_p95_ms": worst["p95_ms"],
    }
