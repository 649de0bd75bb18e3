"""Compare the start rate of two checkouts' servers, measured in the same run: rounds interleaved on one database.

Usage (from the repository root; OTHER is another checkout with its own ``.venv``)::

    .venv/bin/python bench/compare_starts.py OTHER/.venv/bin/postgit-server [--rounds 3] [--instances 3000]

Each round starts W1's instances through each server in turn (which goes first alternates), with W1's 16 requests
in flight (``harness.throughput.start_instances``), then the batch start rate's 20,000 instances
(``harness.starts``), and prints the rates and the server's CPU per start; the medians over the rounds come last.
Against ``DATABASE_URL``'s server when set (a fresh database is created there and dropped), else an embedded
PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from harness import processes  # noqa: E402
from harness.compare import comparison_database, interleaved, median  # noqa: E402
from harness.config import QUICK  # noqa: E402
from harness.runner import say  # noqa: E402
from harness.starts import run_batch_starts  # noqa: E402
from harness.throughput import start_instances  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; print every round and the medians as JSON."""
    parser = argparse.ArgumentParser(prog="bench/compare_starts.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("other", help="the other checkout's postgit-server")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--instances", type=int, default=3_000, help="single starts per server per round")
    parser.add_argument("--workers", type=int, default=1, help="POSTGIT_SERVER_WORKERS of this checkout's server")
    args = parser.parse_args(argv)
    servers = {"other": (args.other, {}), "this": (None, {"POSTGIT_SERVER_WORKERS": str(args.workers)})}
    rates: dict[str, list[dict]] = {name: [] for name in servers}
    batches: dict[str, list[dict]] = {name: [] for name in servers}
    sizes = replace(QUICK, rounds=args.rounds)
    with comparison_database() as paths:
        for number, name in interleaved(args.rounds, list(servers)):
            processes.SERVER_PROGRAM, processes.SERVER_ENV = servers[name]
            result = start_instances(paths, sizes, f"compare-{name}-{number}", args.instances)
            say(f"round {number + 1}, {name}: {result}")
            rates[name].append(result)
            batch = run_batch_starts(paths, replace(sizes, rounds=1))
            say(f"round {number + 1}, {name}, batch: {batch}")
            batches[name].append(batch)
    summary = {name: _medians(rates[name]) | {"batch": _medians(batches[name])} for name in servers}
    print(json.dumps(summary, indent=2))
    return 0


def _medians(results: list[dict]) -> dict:
    def of(key: str) -> float | None:
        values = [result[key] for result in results if result.get(key) is not None]
        return median(values) if values else None

    return {
        "instances_per_second": of("instances_per_second"),
        "server_cpu_ms_per_start": of("server_cpu_ms_per_start"),
        "rounds": [result["instances_per_second"] for result in results],
    }


if __name__ == "__main__":
    sys.exit(main())
