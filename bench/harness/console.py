"""C1: the console's own queries at scale — the instances page and its filters over W4's million instances.

After W4, a ``postgit-server`` is started on W4's database (1,000,000 waiting instances of one workflow, plus the
instances W4's rounds ran). The instances page (``GET /ui/instances``: counts per status, the first page of 50 by
keyset) is requested with each filter a user reaches for — none, a status, a workflow, a time range, an id, an
idempotency key, and combinations that match nothing — ``sizes.c1_requests`` times each, one at a time, after two
untimed requests. The figure is the slowest filter's p95 (target: ≤ 100 ms).

Then ``sizes.c1_watchers`` browsers watch one waiting instance's page at once (its live part's long poll, as the
page asks for it): over a quiet stretch of ``WATCH_SECONDS`` the database's transactions and the server's connections
are counted, beside the same stretch before any watcher came (one LISTEN for every watcher, not a query per watcher
and second); then the instance is cancelled and the time until every watcher has its answer is measured.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from harness.backlog import TIMER_WORKFLOW
from harness.config import Sizes
from harness.database import HARNESS_APP, connect
from harness.processes import start_server
from harness.stats import latency_summary_ms
from harness.throughput import RunPaths

WARMUP = 2
WATCH_SECONDS = 5.0
LIVE_URL = re.compile(r'hx-get="(/ui/instances/[^"/]+/live\?seen=[^"&]+)&amp;wait=')


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
        watchers = asyncio.run(_watch(paths, url, str(some), sizes.c1_watchers, sizes.c1_settle_seconds))
    finally:
        server.stop()
    worst = max(measured.values(), key=lambda figures: figures["p95_ms"])
    return {
        "instances": total,
        "requests_per_filter": sizes.c1_requests,
        "filters": measured,
        "worst_p95_ms": worst["p95_ms"],
        "watchers": watchers,
    }


async def _watch(paths: RunPaths, url: str, instance_id: str, count: int, settle: float) -> dict[str, Any]:
    """``count`` long polls on one instance's live part: their cost to the database, how fast a change wakes them."""
    limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=count + 10)
    async with httpx.AsyncClient(base_url=url, timeout=60.0, limits=limits) as client:
        page = await client.get(f"/ui/instances/{instance_id}")
        found = LIVE_URL.search(page.text)
        if page.status_code != 200 or found is None:
            raise RuntimeError(f"C1: the instance page has no live part ({page.status_code})")
        live = found.group(1).replace("&amp;", "&") + "&wait=25"
        # PostgreSQL counts a backend's transactions when it reports them: within a second while it is busy, within
        # 10 s once it is idle; each window starts after that (the quiet server's, then the watched one's)
        await asyncio.sleep(settle)
        quiet_before = _database_counters(paths)
        await asyncio.sleep(WATCH_SECONDS)
        quiet_after = _database_counters(paths)
        polls = [asyncio.create_task(client.get(live)) for _ in range(count)]
        await asyncio.sleep(settle)  # every poll is in, and its first look at the instance counted
        before = _database_counters(paths)
        await asyncio.sleep(WATCH_SECONDS)
        after = _database_counters(paths)
        answered_early = sum(1 for poll in polls if poll.done())
        cancelled_at = time.perf_counter()
        cancel = await client.post(f"/instances/{instance_id}/cancel")
        if cancel.status_code != 200:
            raise RuntimeError(f"C1: cancelling the watched instance answered {cancel.status_code}")
        answers = await asyncio.gather(*polls)
        woken = time.perf_counter() - cancelled_at
    return {
        "watchers": count,
        "answered_before_the_change": answered_early,
        "server_connections": after["connections"],
        "transactions_per_second_unwatched": round(
            (quiet_after["commits"] - quiet_before["commits"]) / WATCH_SECONDS, 1
        ),
        "transactions_per_second_while_watched": round((after["commits"] - before["commits"]) / WATCH_SECONDS, 1),
        "all_answered_after_change_ms": round(woken * 1000, 1),
        "answers_with_the_change": sum(1 for answer in answers if answer.status_code == 200),
    }


def _database_counters(paths: RunPaths) -> dict[str, int]:
    """The database's committed transactions so far, and the connections open to it other than the harness's own."""
    with connect(paths.url) as conn:
        row = conn.execute(
            "SELECT xact_commit AS commits, (SELECT count(*) FROM pg_stat_activity WHERE datname = d.datname "
            "AND application_name <> %s) AS connections FROM pg_stat_database d WHERE datname = current_database()",
            (HARNESS_APP,),
        ).fetchone()
    return {"commits": row["commits"], "connections": row["connections"]}
