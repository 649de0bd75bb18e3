"""Compare W1's steps/s of two checkouts, measured in the same run: rounds interleaved on one database.

Usage (from the repository root; OTHER is another checkout with its own ``.venv`` and the same schema)::

    .venv/bin/python bench/compare_w1.py OTHER/.venv/bin [--rounds 3] [--instances 3000] [--workers 1]

Each round runs W1 (``harness.throughput.run_w1``: start, hold, release, work off) with each checkout's server and
worker processes in turn (which goes first alternates) and prints its steps/s; the medians over the rounds come
last. Against ``DATABASE_URL``'s server when set (a fresh database is created there and dropped), else an embedded
PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from harness import processes  # noqa: E402
from harness.compare import comparison_database, interleaved, median  # noqa: E402
from harness.config import QUICK  # noqa: E402
from harness.runner import say  # noqa: E402
from harness.throughput import run_w1  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; print every round and the medians as JSON."""
    parser = argparse.ArgumentParser(prog="bench/compare_w1.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("other", type=Path, help="the other checkout's .venv/bin")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--instances", type=int, default=3_000, help="W1 instances per checkout per round")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    args = parser.parse_args(argv)
    programs = {
        "other": (str(args.other / "postgit-server"), str(args.other / "postgit-worker")),
        "this": (None, None),
    }
    rates: dict[str, list[float]] = {name: [] for name in programs}
    with comparison_database() as paths:
        for number, name in interleaved(args.rounds, list(programs)):
            processes.SERVER_PROGRAM, processes.WORKER_PROGRAM = programs[name]
            result = run_w1(paths, QUICK, f"w1-{name}-{number}", args.workers, instances=args.instances)
            say(f"round {number + 1}, {name}: {result['steps_per_second']} steps/s")
            rates[name].append(result["steps_per_second"])
    summary = {name: {"steps_per_second": median(values), "rounds": values} for name, values in rates.items()}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
