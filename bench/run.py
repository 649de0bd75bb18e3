"""Benchmark Postgit against PostgreSQL's own commit rate, measured in the same run.

Usage (from the repository root)::

    .venv/bin/uv run python bench/run.py [--quick | --smoke] [--profile] [--output FILE]

Against ``DATABASE_URL``'s server when it is set (a fresh database is created there and dropped afterwards),
else against an embedded PostgreSQL. Prints a table and writes the figures as JSON to
``bench/results/<timestamp>.json``. BENCHMARKS.md explains the workloads and the figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from harness.config import FULL, QUICK, SMOKE  # noqa: E402
from harness.machine import wait_until_quiet  # noqa: E402
from harness.report import table  # noqa: E402
from harness.runner import run, say  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark once; print the table and write the JSON."""
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="3 s ceilings, W4 with 100,000 timers, 1 worker")
    size.add_argument("--smoke", action="store_true", help="tiny sizes: proves the harness works end to end")
    parser.add_argument("--profile", action="store_true", help="also profile a worker during W1 with py-spy")
    parser.add_argument("--profile-dir", type=Path, default=BENCH / "profiles", help="where profile summaries go")
    parser.add_argument("--output", type=Path, help="the JSON file (default bench/results/<timestamp>.json)")
    parser.add_argument("--keep-db", action="store_true", help="keep the run's database afterwards")
    parser.add_argument(
        "--wait-quiet", type=float, default=0, metavar="SECONDS",
        help="first wait up to SECONDS for the CPUs to be under 15%% busy (other work skews every figure)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so that the processes and databases the run started are cleaned up.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    quiet = None
    if args.wait_quiet > 0:
        say(f"waiting up to {args.wait_quiet:g} s for the machine to be quiet")
        waited, busy = wait_until_quiet(args.wait_quiet)
        quiet = {"waited_seconds": round(waited), "cpu_busy_percent": busy}
        say(f"waited {waited:.0f} s; CPUs {busy:.0f}% busy")

    sizes = SMOKE if args.smoke else QUICK if args.quick else FULL
    stamp = time.strftime("%Y%m%d-%H%M%S")
    output = args.output or BENCH / "results" / f"{stamp}.json"
    log_dir = output.parent / f"{output.stem}-logs"
    shutil.rmtree(log_dir, ignore_errors=True)
    results = run(
        sizes, stamp=stamp, log_dir=log_dir, profile_dir=args.profile_dir if args.profile else None,
        keep_db=args.keep_db,
    )  # fmt: skip
    results["machine"]["wait_quiet"] = quiet
    results["command"] = " ".join(["bench/run.py", *(argv if argv is not None else sys.argv[1:])])
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(table(results))
    say(f"results: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
