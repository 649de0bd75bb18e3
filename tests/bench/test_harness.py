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


def run_smoke(tmp_path: Path) -> tuple[dict, str]:
    output = tmp_path / "smoke.json"
    env = {key: value for key, value in os.environ.items() if not key.startswith("POSTGIT_")}
    env["DATABASE_URL"] = admin_url()
    result = subprocess.run(
        [sys.executable, str(RUN), "--smoke", "--profile", "--profile-dir", str(tmp_path / "profiles"),
         "--output", str(output)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=100, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"bench/run.py --smoke failed:\n{result.stdout}\n{result.stderr}"
    return json.loads(output.read_text()), result.stdout


def existing(databases: list[str]) -> list[str]:
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)", (databases,)).fetchall()
    return [row[0] for row in rows]


@pytest.mark.timeout(110)
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

    assert results["memory"]["worker_peak_rss_mb"] > 0
    assert set(results["targets"]) == {
        "w1_ratio_to_ceiling", "w2_p50_ms", "w2_p99_ms", "w3_p99_ms", "w3_max_ms", "w4_ratio_to_w1",
        "worker_peak_rss_mb",
    }  # fmt: skip
    assert all(target["value"] is not None for target in results["targets"].values())

    for role in ("worker", "server"):
        summary = Path(results["profile"]["summaries"][role]).read_text()
        assert "busy running Python" in summary and "postgit" in summary

    assert "W2 start" in printed and "targets" in printed
    databases = [results["databases"]["plain"], results["databases"]["backlog"]]
    assert all(name.startswith("postgit_bench_") for name in databases)
    assert existing(databases) == [], "the run's databases were not dropped"
