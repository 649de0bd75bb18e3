"""One benchmark run: a fresh database, the ceiling, batch starts, W1 to W4, F1 to F3, a profile; the results."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict

from harness import ceiling, machine, profile
from harness.backlog import insert_waiting, maintain
from harness.config import Sizes
from harness.console import run_console
from harness.control_flow import run_f1, run_f2
from harness.database import connect, connection_transactions, enable_statement_stats, fresh_database, pg_server
from harness.event_latency import f3_event_latency
from harness.latency import w2_start_latency, w3_timer_lateness
from harness.operations import O3_KEYS, O3_LIMIT, run_keyed_w1, run_purge, run_schedules
from harness.processes import Process, start_server, start_worker
from harness.report import derive
from harness.scale import SERVERS, WORKERS, run_scale
from harness.starts import run_batch_starts
from harness.state_wal import run_state_wal
from harness.throughput import RunPaths, run_w1
from postgit.db import migrate


def say(message: str) -> None:
    """Progress, on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def wait_for_worker(url: str, process: Process, timeout: float = 60.0) -> None:
    """Wait until the worker registered itself (it claims from then on)."""
    deadline = time.monotonic() + timeout
    with connect(url) as conn:
        while time.monotonic() < deadline:
            if not process.alive():
                raise RuntimeError(f"{process.name} exited with {process.popen.returncode}:\n{process.tail()}")
            row = conn.execute("SELECT count(*) AS n FROM postgit.workers").fetchone()
            if row is not None and row["n"] > 0:
                return
            time.sleep(0.05)
    raise RuntimeError(f"{process.name} did not register within {timeout:.0f}s:\n{process.tail()}")


def run_latency(paths: RunPaths, sizes: Sizes) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """W2, F3, then W3, against one server and one worker that is idle when W2 and each of F3's events begin."""
    server, api_url = start_server(paths.url, paths.log_dir)
    worker = start_worker(paths.url, sizes.worker, paths.log_dir, "latency-worker")
    try:
        wait_for_worker(paths.url, worker)
        say(f"W2: {sizes.w2_instances} instances started one at a time, worker idle")
        w2 = asyncio.run(w2_start_latency(paths.url, api_url, sizes))
        say(f"F3: {sizes.f3_instances} waiting instances sent their event one at a time, worker idle")
        f3 = asyncio.run(f3_event_latency(paths.url, api_url, sizes))
        say(f"W3: {sizes.w3_instances} instances started back to back, each sleeping {sizes.w3_sleep_seconds:g} s")
        w3 = asyncio.run(w3_timer_lateness(paths.url, api_url, sizes))
    finally:
        worker.stop()
        server.stop()
    return w2, w3, f3


def run_profile(paths: RunPaths, sizes: Sizes, profile_dir: Path, stamp: str) -> dict[str, Any]:
    """W1 with one worker, the server and the worker under py-spy; summaries are written to ``profile_dir``."""
    raws = {"worker": paths.log_dir / "w1-worker.pyspy.txt", "server": paths.log_dir / "w1-server.pyspy.txt"}
    result = run_w1(
        paths, sizes, "profile-w1-1w", 1, profile_raw=raws["worker"], server_profile_raw=raws["server"],
        instances=sizes.profile_instances,
    )  # fmt: skip
    return {"summaries": write_profile_summaries(result, sizes, stamp, raws, profile_dir), "w1": result}


def write_profile_summaries(
    result: dict[str, Any], sizes: Sizes, stamp: str, raws: dict[str, Path], profile_dir: Path
) -> dict[str, str]:
    """Summarise the raw py-spy profiles of a profiled W1 run into ``profile_dir``; the summaries' paths."""
    common = f"run {stamp} ({sizes.mode} mode); 200 samples/s, idle samples included (py-spy record --idle)."
    headers = {
        "worker": [
            f"py-spy profile of one postgit-worker working off W1 ({sizes.profile_instances} instances x 3 Noop "
            "steps),",
            common,
            f"Under the profiler: {result['steps_per_second']} steps/s, worker CPU {result['worker_cpu_percent']}% "
            f"of a core, PostgreSQL CPU {result.get('postgres_cpu_percent')}% of a core, commits/step "
            f"{result['commits_per_step']}, statements/step {result['statements_per_step']}.",
        ],
        "server": [
            f"py-spy profile of postgit-server starting W1's {sizes.profile_instances} instances "
            f"({sizes.start_concurrency} requests in flight),",
            common,
            f"Under the profiler: {result['start']['instances_per_second']} starts/s.",
        ],
    }
    profile_dir.mkdir(parents=True, exist_ok=True)
    summaries = {}
    for role, raw in raws.items():
        path = profile_dir / f"{stamp}-w1-{role}.txt"
        path.write_text(profile.summarise(raw, headers[role]), encoding="utf-8")
        summaries[role] = str(path)
    return summaries


def run_rounds(plain: RunPaths, backlogged: RunPaths, sizes: Sizes) -> tuple[dict[str, Any], dict[str, Any]]:
    """W1 and W4 ``sizes.rounds`` times at each worker count, interleaved; per workload and count, the median round.

    W1 runs in the database without the backlog, W4 in the one with it, one right after the other (which goes
    first alternates from round to round), so that a change in the machine's other load weighs on both alike. Both
    databases are vacuumed and analysed first, so that neither carries the other workloads' dead rows.
    """
    for paths in (plain, backlogged):
        maintain(paths.url)
    measured: dict[str, dict[int, list[dict[str, Any]]]] = {
        "w1": {workers: [] for workers in sizes.w1_workers},
        "w4": {workers: [] for workers in sizes.w4_workers},
    }
    for number in range(1, sizes.rounds + 1):
        for workers in sizes.w1_workers:
            order = [("w1", plain), ("w4", backlogged)]
            for workload, paths in order if number % 2 else reversed(order):
                if workers not in measured[workload]:
                    continue
                say(f"{workload.upper()}: {sizes.w1_instances} instances x 3 steps, {workers} worker(s), "
                    f"round {number} of {sizes.rounds}")  # fmt: skip
                measured[workload][workers].append(run_w1(paths, sizes, f"{workload}-{workers}w-r{number}", workers))
    w1, w4 = measured["w1"], measured["w4"]
    return (
        {str(workers): median_round(rounds) for workers, rounds in w1.items()},
        {str(workers): median_round(rounds) for workers, rounds in w4.items()},
    )


def run_control_flow(paths: RunPaths, sizes: Sizes) -> tuple[dict[str, Any], dict[str, Any]]:
    """F1 and F2 ``sizes.rounds`` times each, interleaved (which goes first alternates); each one's median round.

    In the database without the backlog, vacuumed and analysed first as before W1.
    """
    maintain(paths.url)
    measured: dict[str, list[dict[str, Any]]] = {"f1": [], "f2": []}
    for number in range(1, sizes.rounds + 1):
        order = ["f1", "f2"] if number % 2 else ["f2", "f1"]
        for workload in order:
            name = f"{workload}-r{number}"
            if workload == "f1":
                say(f"F1: 1 instance, ForEach over {sizes.f1_items:,} Noop items (concurrency "
                    f"{sizes.f1_concurrency}), 1 worker, round {number} of {sizes.rounds}")  # fmt: skip
                measured["f1"].append(run_f1(paths, sizes, name))
            else:
                say(f"F2: {sizes.f2_instances:,} instances x Parallel of {sizes.f2_branches} Noop branches, "
                    f"1 worker, round {number} of {sizes.rounds}")  # fmt: skip
                measured["f2"].append(run_f2(paths, sizes, name))
    return median_round(measured["f1"]), median_round(measured["f2"])


def insert_backlog(paths: RunPaths, sizes: Sizes) -> dict[str, Any]:
    """W4's far-future timers, in the database at ``paths`` (a server deploys their workflow)."""
    say(f"W4: inserting {sizes.w4_waiting:,} far-future timers")
    server, api_url = start_server(paths.url, paths.log_dir)
    try:
        return insert_waiting(paths.url, api_url, count=sizes.w4_waiting)
    finally:
        server.stop()


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median steps/s (the lower middle of an even count), with every round's key figures."""
    ordered = sorted(rounds, key=lambda run: run["steps_per_second"] or 0)
    median = dict(ordered[(len(ordered) - 1) // 2])
    median["rounds"] = [
        {
            "steps_per_second": run["steps_per_second"],
            "start_instances_per_second": run["start"]["instances_per_second"],
            "worker_peak_rss_mb": run["worker_peak_rss_mb"],
            "commits_per_step": run["commits_per_step"],
            "release_to_finished_seconds": run["release_to_finished_seconds"],
        }
        for run in rounds
    ]
    return median


def run(sizes: Sizes, *, stamp: str, log_dir: Path, profile_dir: Path | None, keep_db: bool) -> dict[str, Any]:
    """Run every workload once; the results with the derived figures and targets.

    Three fresh databases: one for the ceiling, the batch starts, W1, W2, W3, F1, F2, F3, S1, S2, O1, O3 and the
    profile, one holding W4's backlog (and C1's instances), one holding the finished instances O2 purges.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"schema": 1, "stamp": stamp, "mode": sizes.mode, "sizes": sizes.to_json()}
    with (
        pg_server() as server,
        fresh_database(server.admin_url, keep=keep_db) as url,
        fresh_database(server.admin_url, keep=keep_db) as backlog_url,
        fresh_database(server.admin_url, keep=keep_db) as purge_url,
    ):
        paths = prepare(server.admin_url, url, log_dir)
        backlogged = prepare(server.admin_url, backlog_url, log_dir)
        results["machine"] = machine.describe(url, server.embedded)
        results["databases"] = {
            "plain": conninfo_to_dict(url)["dbname"],
            "backlog": conninfo_to_dict(backlog_url)["dbname"],
            "purge": conninfo_to_dict(purge_url)["dbname"],
            "kept": keep_db,
            "pg_stat_statements": paths.statement_stats,
            "transactions_per_connection": paths.connection_transactions,
        }
        say(f"databases {results['databases']['plain']} and {results['databases']['backlog']}; logs in {log_dir}")

        say(f"ceiling: {sizes.ceiling_seconds:g} s at each of {sizes.ceiling_connections} connections")
        results["ceiling"] = ceiling.measure(url, sizes.ceiling_connections, sizes.ceiling_seconds, sizes.pgbench)

        say(f"batch starts: {sizes.batch_instances:,} instances in batches of {sizes.batch_size:,} "
            f"({sizes.batch_in_flight} in flight), {sizes.rounds} round(s)")  # fmt: skip
        results["batch_starts"] = run_batch_starts(paths, sizes)

        results["w2"], results["w3"], results["f3"] = run_latency(paths, sizes)

        results["profile"] = None
        if profile_dir is not None:
            say("profile: W1 with 1 worker under py-spy")
            results["profile"] = run_profile(paths, sizes, profile_dir, stamp)

        results["w4"] = {"backlog": insert_backlog(backlogged, sizes)}
        results["w1"] = {}
        results["w1"]["runs"], results["w4"]["runs"] = run_rounds(paths, backlogged, sizes)
        results["f1"], results["f2"] = run_control_flow(paths, sizes)
        say(f"C1: the console's instances page over W4's {sizes.w4_waiting:,} waiting instances")
        results["c1"] = run_console(backlogged, sizes)
        say(f"S1: {sizes.w1_instances} instances started through {SERVERS} servers, worked off by {WORKERS} workers")
        maintain(paths.url)
        results["s1"] = run_scale(paths, sizes)
        say(f"S2: WAL per step with a 5 MB and a 5 KB state, {sizes.s2_instances} instances each")
        results["s2"] = run_state_wal(paths, sizes)
        say(f"O1: {sizes.o1_schedules} schedules firing every second for {sizes.o1_seconds} s")
        results["o1"] = run_schedules(paths, sizes)
        say(f"O3: W1 with a concurrency key (limit {O3_LIMIT}, {O3_KEYS} keys), 1 worker")
        maintain(paths.url)
        results["o3"] = run_keyed_w1(paths, sizes)
        say(f"O2: W1 while {sizes.o2_finished:,} finished instances are purged, then W1 idle")
        results["o2"] = run_purge(prepare(server.admin_url, purge_url, log_dir), sizes)
    results["machine"]["load_average_at_end"] = [round(value, 2) for value in os.getloadavg()]
    return derive(results)


def prepare(admin_url: str, url: str, log_dir: Path) -> RunPaths:
    """Migrate a fresh database and find out how its transactions are to be counted."""
    asyncio.run(migrate(url))
    return RunPaths(admin_url, url, log_dir, enable_statement_stats(url), connection_transactions(admin_url, url))
