"""The benchmark harness end to end, in its smoke sizes: real server and worker processes, a database of its own.

No timing is asserted: only that one run measures every figure and writes it, and that the engine's commits were
counted (a worker that commits nothing per step would be a broken count, not a fast engine).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.conftest import admin_url

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "bench" / "run.py"
LATENCY_KEYS = ("count", "p50_ms", "p95_ms", "p99_ms", "max_ms")
SMOKE_TIMEOUT = 600
"""Seconds the smoke run may take: it starts a server and workers for every workload, about two minutes idle and
nearly four while the rest of the suite runs beside it on 2 cores."""


def run_smoke(tmp_path: Path) -> tuple[dict, str]:
    output = tmp_path / "smoke.json"
    env = {key: value for key, value in os.environ.items() if not key.startswith("POSTGIT_")}
    env["DATABASE_URL"] = admin_url()
    result = subprocess.run(
        [sys.executable, str(RUN), "--smoke", "--profile", "--profile-dir", str(tmp_path / "profiles"),
         "--output", str(output)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=SMOKE_TIMEOUT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"bench/run.py --smoke failed:\n{result.stdout}\n{result.stderr}"
    return json.loads(output.read_text()), result.stdout


def positive(value: object) -> bool:
    """A number above zero (not None, not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def existing(databases: list[str]) -> list[str]:
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)", (databases,)).fetchall()
    return [row[0] for row in rows]


@pytest.mark.timeout(SMOKE_TIMEOUT + 30)
def test_smoke_run_measures_every_figure(tmp_path):
    results, printed = run_smoke(tmp_path)

    machine = results["machine"]
    assert machine["cpu_count"] >= 1 and machine["memory_gib"] > 0
    for setting in ("server_version", "shared_buffers", "synchronous_commit"):
        assert machine["postgres"][setting]

    assert set(results["ceiling"]["psycopg"]) == {"1", "2", "4"}
    assert all(rate > 0 for rate in results["ceiling"]["psycopg"].values())

    for workload in ("w1", "w4"):
        for run in results[workload]["runs"].values():
            assert run["start"]["instances"] == results["sizes"]["w1_instances"]
            assert run["start"]["instances_per_second"] > 0
            assert run["steps"] == 3 * results["sizes"]["w1_instances"]
            assert run["steps_per_second"] > 0
            assert run["commits"] > 0 and run["commits_per_step"] > 0
            assert all(rss and rss > 0 for rss in run["worker_peak_rss_mb"])
    assert results["w1"]["runs"]["1"]["ratio_to_ceiling"] > 0
    assert results["w1"]["best"]["steps_per_second"] > 0
    assert results["w4"]["backlog"]["waiting_instances"] == results["sizes"]["w4_waiting"]
    assert results["w4"]["ratio_to_w1"] > 0

    assert results["w2"]["count"] == results["sizes"]["w2_instances"]
    assert results["w3"]["count"] == results["sizes"]["w3_instances"]
    for workload in ("w2", "w3"):
        assert all(results[workload][key] is not None for key in LATENCY_KEYS)

    sizes = results["sizes"]
    f1, f2, f3 = results["f1"], results["f2"], results["f3"]
    assert f1["instances"] == 1 and f1["steps"] == sizes["f1_items"]
    assert f2["instances"] == sizes["f2_instances"] and f2["steps"] == sizes["f2_instances"] * sizes["f2_branches"]
    for run in (f1, f2):
        assert run["workers"] == 1 and run["steps_not_completed"] == 0
        assert positive(run["steps_per_second"]) and positive(run["ratio_to_w1"])
        assert positive(run["start"]["instances_per_second"]) and positive(run["release_to_finished_seconds"])
        assert run["commits"] > 0 and positive(run["commits_per_step"])
        assert all(positive(rss) for rss in run["worker_peak_rss_mb"])
    assert positive(f1["instance_seconds"])
    assert f3["count"] == sizes["f3_instances"]
    # from the event request's answer: the next handler may start before the answer reaches the client (below 0)
    assert all(f3[key] is not None for key in LATENCY_KEYS) and positive(f3["max_ms"])
    assert all(positive(f3[part][key]) for part in ("from_request_sent", "event_request") for key in LATENCY_KEYS)

    batch = results["batch_starts"]
    assert batch["instances"] == sizes["batch_instances"] and batch["batch_size"] == sizes["batch_size"]
    assert positive(batch["instances_per_second"]) and positive(batch["server_cpu_percent"])
    assert positive(results["w1"]["start_per_second_median"])

    s1 = results["s1"]
    assert s1["servers"] == 2 and s1["workers"] == 3
    assert s1["start"]["instances"] == sizes["w1_instances"] and positive(s1["start"]["instances_per_second"])
    assert s1["steps"] == 3 * sizes["w1_instances"] and s1["steps_not_completed"] == 0
    assert positive(s1["start_ratio_to_one_server"]) and positive(s1["ratio_to_w1_1_workers"])
    assert s1["ran_twice"] == {"repeated_attempts": 0, "not_completed": 0, "instances_without_three_steps": 0}
    assert set(s1["table_mib_per_million_instances"]) == {"instances", "steps", "events", "runs"}
    assert s1["table_mib_per_million_instances"]["steps"] > 0

    s2 = results["s2"]
    for case in (s2["large"], s2["small"]):
        assert case["instances"] == sizes["s2_instances"] and positive(case["wal_bytes_per_step"])
    assert s2["large"]["state_bytes"] > 5_000_000 > 5_000 < s2["small"]["state_bytes"] < 10_000
    assert positive(s2["ratio"])

    o1, o2 = results["o1"], results["o2"]
    assert (
        o1["schedules"] == sizes["o1_schedules"] and o1["nominal_times"] == sizes["o1_schedules"] * sizes["o1_seconds"]
    )
    assert o1["started_once"] == o1["nominal_times"] and o1["not_started"] == 0 and o1["missed_or_skipped"] == 0
    assert all(o1[key] is not None for key in ("lateness_p50_ms", "lateness_p99_ms", "lateness_max_ms"))
    assert o2["finished_instances"] == sizes["o2_finished"] and o2["purger_exit_code"] == 0
    assert o2["purged_while_w1_ran"] > 0
    assert positive(o2["w1_purging_steps_per_second"]) and positive(o2["ratio_to_idle"])

    o3 = results["o3"]
    assert o3["keys"] == 100 and o3["limit"] == 10 and o3["start"]["instances"] == sizes["w1_instances"]
    assert o3["steps"] == 3 * sizes["w1_instances"] and o3["steps_not_completed"] == 0
    assert positive(o3["steps_per_second"]) and positive(o3["ratio_to_w1"])

    c1 = results["c1"]
    assert c1["instances"] >= sizes["w4_waiting"] and c1["requests_per_filter"] == sizes["c1_requests"]
    assert len(c1["filters"]) >= 8 and all(positive(f["p95_ms"]) for f in c1["filters"].values())
    assert c1["worst_p95_ms"] == max(f["p95_ms"] for f in c1["filters"].values())
    watch = c1["watchers"]
    assert watch["watchers"] == sizes["c1_watchers"] and watch["answered_before_the_change"] == 0
    assert watch["answers_with_the_change"] == sizes["c1_watchers"] and positive(watch["all_answered_after_change_ms"])
    assert 0 < watch["server_connections"] < sizes["c1_watchers"]

    assert results["memory"]["worker_peak_rss_mb"] > 0
    assert set(results["targets"]) == {
        "w1_ratio_to_ceiling", "start_per_second", "batch_start_per_second", "w2_p50_ms", "w2_p99_ms", "w3_p99_ms",
        "w3_max_ms", "w4_ratio_to_w1", "worker_peak_rss_mb", "f1_ratio_to_w1", "f2_ratio_to_w1", "f3_p50_ms",
        "f3_p99_ms", "s1_ran_twice", "s2_wal_ratio", "o1_not_started_once", "o1_lateness_p99_ms", "o2_ratio_to_idle",
        "c1_worst_p95_ms", "o3_ratio_to_w1",
    }  # fmt: skip
    assert all(target["value"] is not None for target in results["targets"].values())

    for role in ("worker", "server"):
        summary = Path(results["profile"]["summaries"][role]).read_text()
        assert "busy running Python" in summary and "postgit" in summary

    assert "W2 start" in printed and "targets" in printed and "starts, instances/s" in printed
    assert all(
        label in printed for label in ("F1, 1 worker(s)", "F2, 1 worker(s)", "F3 event", "S1, 2+3", "O1", "O2", "C1")
    )
    databases = [results["databases"][name] for name in ("plain", "backlog", "purge")]
    assert all(name.startswith("postgit_bench_") for name in databases)
    assert existing(databases) == [], "the run's databases were not dropped"
