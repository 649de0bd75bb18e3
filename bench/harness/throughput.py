"""W1 (and W4's repeat of it): instances of a 3-step Noop workflow, all started first through the API, then worked off.

Phases, each isolated so that PostgreSQL's counters can be attributed:

1. start: a ``postgit-server`` is started, the workflow deployed, every instance started with many requests in
   flight (the start rate), and the server stopped again. The started instances are then held (their ``run_at``
   moved a day ahead) so that no worker takes one before every worker is up;
2. work-off: the worker processes are started; once all have registered, the instances are released at once
   (``run_at = now()`` and a NOTIFY on the work channel, as a start would send) and the workers run until every
   instance has completed, then are stopped. Only they (and the harness's own, counted, statements) use the
   database meanwhile, so the difference of ``pg_stat_database.xact_commit`` (and of pg_stat_statements' calls,
   when available) is the engine's.

steps/s = steps ÷ (last step's ``finished_at`` - first step's ``started_at``), read from the steps table.

The same two phases measure F1 and F2 (:mod:`harness.control_flow`) with other definitions.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.api import Api
from harness.config import Sizes
from harness.database import (
    MARKER,
    CountedConnection,
    connect,
    engine_backends,
    read_counters,
    reset_statement_stats,
    top_statements,
    wait_until_disconnected,
)
from harness.processes import (
    Process,
    all_postgres_cpu_seconds,
    attach_profiler,
    cpu_seconds,
    machine_busy_seconds,
    peak_rss_mb,
    postgres_cpu_seconds,
    start_server,
    start_worker,
)
from postgit.engine.channels import WORK_CHANNEL

POLL_SECONDS = 0.1
STEPS = 3


def three_noops() -> dict[str, Any]:
    """W1's definition: a Sequence of three Noop steps."""
    return {
        "id": "root",
        "type": "Sequence",
        "children": [{"id": f"step{index}", "type": "Noop", "params": {}} for index in range(1, STEPS + 1)],
    }


@dataclass
class RunPaths:
    """Where a run's database, server and logs are."""

    admin_url: str
    url: str
    log_dir: Path
    statement_stats: bool
    connection_transactions: int
    """What PostgreSQL counts for a harness connection's start, to take off the engine's commits."""


@dataclass
class Sample:
    """One progress poll during work-off."""

    at: float
    completed: int
    worker_cpu: float
    machine_busy: float
    machine_total: float
    open_connections: int
    busy_connections: int
    backend_cpu: dict[int, float]
    """CPU seconds so far of each PostgreSQL process serving the engine (empty when PostgreSQL is remote)."""
    postgres_cpu: float
    """CPU seconds so far of all PostgreSQL processes on this machine."""


def start_instances(
    paths: RunPaths,
    sizes: Sizes,
    name: str,
    count: int,
    profile_raw: Path | None = None,
    definition: dict[str, Any] | None = None,
    make_input: Callable[[int], Any] | None = None,
) -> dict[str, Any]:
    """Phase 1: deploy ``name``, start ``count`` instances through a server that is stopped afterwards, hold them.

    ``definition`` defaults to W1's (:func:`three_noops`), ``make_input`` (the input of the instance numbered
    ``index``) to ``{"n": index}``. With ``profile_raw``, py-spy records the server meanwhile.
    """
    server, url = start_server(paths.url, paths.log_dir)
    profiler: Process | None = None
    in_flight = min(sizes.start_concurrency, count)
    try:
        if profile_raw is not None:
            profiler = attach_profiler(server.pid, profile_raw, paths.log_dir, f"{name}-server-py-spy")

        async def go() -> dict[str, Any]:
            async with Api(url) as api:
                await api.deploy(name, definition or three_noops())
                cpu_before = time.process_time()
                server_before = cpu_seconds(server.pid) or 0.0
                batch = await api.start_many(name, count, in_flight, make_input)
                server_cpu = (cpu_seconds(server.pid) or 0.0) - server_before
                client_cpu = time.process_time() - cpu_before
            return {
                "instances": len(batch.started),
                "seconds": round(batch.seconds, 3),
                "instances_per_second": round(batch.per_second, 1),
                "in_flight": batch.in_flight,
                # the HTTP client (this process) shares the machine with the server and PostgreSQL
                "client_cpu_percent": round(100 * client_cpu / batch.seconds, 1) if batch.seconds > 0 else None,
                # what a start costs the server's process, whatever else the machine runs meanwhile
                "server_cpu_ms_per_start": round(1000 * server_cpu / len(batch.started), 3) if batch.started else None,
            }

        started = asyncio.run(go())
    finally:
        server.stop()
        if profiler is not None:
            profiler.wait(60)
    with connect(paths.url) as conn:
        conn.execute(
            "UPDATE postgit.instances SET run_at = now() + interval '1 day' WHERE workflow = %s AND status = 'pending'",
            (name,),
        )
    return started


def _release(poller: CountedConnection, name: str) -> float:
    """Make the held instances due now and wake the workers, as starting them did; when (the server's clock).

    The notification carries the node types that can run them, as a start's does (``node_types``: for a workflow
    whose root is a control node, the types of the steps it runs first).
    """
    row = poller.one(
        "WITH released AS (UPDATE postgit.instances SET run_at = now() WHERE workflow = %s AND status = 'pending' "
        "RETURNING node_types) SELECT count(*) AS n, extract(epoch FROM now())::float8 AS at, "
        "pg_notify(%s, string_agg(DISTINCT array_to_string(node_types, ','), ',')) IS NOT NULL AS notified "
        "FROM released",
        (name, WORK_CHANNEL),
    )
    return float(row["at"])


def work_off(
    paths: RunPaths,
    sizes: Sizes,
    name: str,
    count: int,
    workers: int,
    profile_raw: Path | None = None,
    alone: bool = True,
) -> dict[str, Any]:
    """Phase 2: start ``workers`` worker processes and measure them working off ``count`` instances of ``name``.

    With ``profile_raw``, py-spy attaches to the first worker once it is up and before the instances are released,
    so the profile holds the work-off and not the worker's start. ``alone=False``: other processes use the database
    meanwhile (O2's purge), so the work-off does not wait for every other connection to close, and the counts of
    commits and statements include theirs.
    """
    if paths.statement_stats:
        reset_statement_stats(paths.url)
    if alone:
        wait_until_disconnected(paths.admin_url, paths.url)
    overhead = paths.connection_transactions
    before, harness_transactions = read_counters(paths.admin_url, paths.url, paths.statement_stats, overhead)
    processes = [start_worker(paths.url, sizes.worker, paths.log_dir, f"{name}-worker{i}") for i in range(workers)]
    profiler: Process | None = None
    poller = CountedConnection(paths.url, overhead)
    admin = connect(paths.admin_url)
    samples: list[Sample] = []
    try:
        _wait_for_workers(poller, processes, len(processes), sizes.timeout_seconds)
        if profile_raw is not None:
            profiler = attach_profiler(processes[0].pid, profile_raw, paths.log_dir, f"{name}-py-spy")
        released_at = _release(poller, name)
        _wait_for_completion(paths, sizes, name, count, processes, poller, admin, samples)
        peak_rss = [peak_rss_mb(process.pid) for process in processes]
    finally:
        for process in processes:
            process.stop()
        if profiler is not None:  # py-spy writes its output and exits once the worker has exited
            profiler.wait(60)
        harness_transactions += poller.transactions
        poller.close()
        admin.close()
    if alone:
        wait_until_disconnected(paths.admin_url, paths.url)
    after, _ = read_counters(paths.admin_url, paths.url, paths.statement_stats, overhead)
    window = _step_window(paths.url, name)
    statements_by_time = top_statements(paths.url) if paths.statement_stats else None
    steps = window["steps"]
    seconds = window["seconds"]
    engine_commits = after.xact_commit - before.xact_commit - harness_transactions
    statements = (
        after.statements - before.statements if after.statements is not None and before.statements is not None else None
    )
    return {
        "workers": workers,
        "instances": count,
        "steps": steps,
        "steps_not_completed": window["not_completed"],
        "seconds": round(seconds, 3),
        "steps_per_second": round(steps / seconds, 1) if seconds > 0 else None,
        "first_step_started_at": window["first"],
        "last_step_finished_at": window["last"],
        "released_at": released_at,
        "last_instance_finished_at": window["finished"],
        # from the release to the last instance's completion: claims, control-flow decisions and all
        "release_to_finished_seconds": round(window["finished"] - released_at, 3),
        "worker_peak_rss_mb": [round(value, 1) if value is not None else None for value in peak_rss],
        "commits": engine_commits,
        "commits_per_step": round(engine_commits / steps, 3) if steps else None,
        "rollbacks": after.xact_rollback - before.xact_rollback,
        "statements": statements,
        "statements_per_step": round(statements / steps, 3) if statements is not None and steps else None,
        "wal_bytes_per_step_server_wide": round((after.wal_bytes - before.wal_bytes) / steps) if steps else None,
        "wal_fpi_per_step_server_wide": round((after.wal_fpi - before.wal_fpi) / steps, 3) if steps else None,
        "statement_wal_bytes_per_step": (
            round((after.statement_wal_bytes - before.statement_wal_bytes) / steps)
            if after.statement_wal_bytes is not None and before.statement_wal_bytes is not None and steps
            else None
        ),
        "harness_transactions_excluded": harness_transactions,
        **_cpu_and_connections(samples, window),
        "top_statements": statements_by_time,
    }


def _wait_for_workers(poller: CountedConnection, processes: list[Process], count: int, timeout: float) -> None:
    """Wait until ``count`` workers registered (each claims from then on)."""
    deadline = time.monotonic() + timeout
    while poller.one("SELECT count(*) AS n FROM postgit.workers")["n"] < count:
        for process in processes:
            if not process.alive():
                raise RuntimeError(f"{process.name} exited with {process.popen.returncode}:\n{process.tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{count} workers did not register within {timeout:.0f}s")
        time.sleep(0.05)


def _wait_for_completion(
    paths: RunPaths,
    sizes: Sizes,
    name: str,
    count: int,
    processes: list[Process],
    poller: CountedConnection,
    admin: Any,
    samples: list[Sample],
) -> None:
    """Poll until every instance of ``name`` completed; fail on a failed instance, a dead worker or the timeout."""
    deadline = time.monotonic() + sizes.timeout_seconds
    while True:
        row = poller.one(
            "SELECT count(*) FILTER (WHERE status = 'completed') AS completed, "
            "count(*) FILTER (WHERE status IN ('failed', 'cancelled')) AS failed "
            "FROM postgit.instances WHERE workflow = %s",
            (name,),
        )
        busy, total = machine_busy_seconds()
        pids, busy_conns = engine_backends(admin, paths.url)
        cpu = sum(cpu_seconds(process.pid) or 0.0 for process in processes)
        backend_cpu = postgres_cpu_seconds(pids)
        postgres_cpu = all_postgres_cpu_seconds() if backend_cpu else 0.0
        samples.append(
            Sample(time.time(), row["completed"], cpu, busy, total, len(pids), busy_conns, backend_cpu, postgres_cpu)
        )
        if row["failed"]:
            raise RuntimeError(f"{row['failed']} instances of {name} failed; see the logs in {paths.log_dir}")
        if row["completed"] >= count:
            return
        for process in processes:
            if not process.alive():
                raise RuntimeError(f"{process.name} exited with {process.popen.returncode}:\n{process.tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{name}: {row['completed']} of {count} instances completed after {sizes.timeout_seconds:.0f}s"
            )
        time.sleep(POLL_SECONDS)


def _step_window(url: str, name: str) -> dict[str, Any]:
    with connect(url) as conn:
        row = conn.execute(
            f"SELECT {MARKER} count(*) AS steps, count(*) FILTER (WHERE s.status <> 'completed') AS not_completed, "
            "extract(epoch FROM min(s.started_at))::float8 AS first, "
            "extract(epoch FROM max(s.finished_at))::float8 AS last, "
            "(SELECT extract(epoch FROM max(finished_at))::float8 FROM postgit.instances WHERE workflow = %s) "
            "AS finished "
            "FROM postgit.steps s JOIN postgit.instances i ON i.id = s.instance_id WHERE i.workflow = %s",
            (name, name),
        ).fetchone()
    assert row is not None and row["steps"], f"no steps of {name} were recorded"
    return {
        "steps": int(row["steps"]),
        "not_completed": int(row["not_completed"]),
        "first": row["first"],
        "last": row["last"],
        "finished": row["finished"],
        "seconds": row["last"] - row["first"],
    }


def _cpu_and_connections(samples: list[Sample], window: dict[str, Any]) -> dict[str, Any]:
    """CPU use over the polls inside the step window, and the engine's connections.

    ``worker_cpu_percent``, ``postgres_cpu_percent`` (the PostgreSQL processes serving the engine's connections)
    and ``all_postgres_cpu_percent`` (every PostgreSQL process on the machine, other databases' included) are in %
    of one core; ``machine_busy_percent`` in % of all cores, other work included.
    """
    inside = [sample for sample in samples if window["first"] <= sample.at <= window["last"]]
    result: dict[str, Any] = {
        "worker_cpu_percent": None,
        "postgres_cpu_percent": None,
        "all_postgres_cpu_percent": None,
        "machine_busy_percent": None,
        "engine_connections_open_max": max((s.open_connections for s in samples), default=None),
        "engine_connections_busy_mean": None,
    }
    if inside:
        result["engine_connections_busy_mean"] = round(sum(s.busy_connections for s in inside) / len(inside), 2)
    if len(inside) >= 2:
        first, last = inside[0], inside[-1]
        elapsed = last.at - first.at
        if elapsed > 0:
            result["worker_cpu_percent"] = round(100 * (last.worker_cpu - first.worker_cpu) / elapsed, 1)
            if last.backend_cpu:
                backend = sum(cpu - first.backend_cpu.get(pid, 0.0) for pid, cpu in last.backend_cpu.items())
                result["postgres_cpu_percent"] = round(100 * backend / elapsed, 1)
                result["all_postgres_cpu_percent"] = round(100 * (last.postgres_cpu - first.postgres_cpu) / elapsed, 1)
            cores_total = last.machine_total - first.machine_total
            if cores_total > 0:
                result["machine_busy_percent"] = round(100 * (last.machine_busy - first.machine_busy) / cores_total, 1)
    return result


def run_w1(
    paths: RunPaths,
    sizes: Sizes,
    name: str,
    workers: int,
    profile_raw: Path | None = None,
    server_profile_raw: Path | None = None,
    instances: int | None = None,
) -> dict[str, Any]:
    """Start ``sizes.w1_instances`` instances of a fresh workflow ``name`` and work them off with ``workers``.

    ``profile_raw`` and ``server_profile_raw``: py-spy records the first worker during work-off,
    and the server while it starts the instances. ``instances`` overrides ``sizes.w1_instances``.
    """
    count = instances or sizes.w1_instances
    start = start_instances(paths, sizes, name, count, server_profile_raw)
    result = work_off(paths, sizes, name, count, workers, profile_raw)
    return {"start": start, **result}
