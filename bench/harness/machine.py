"""What the run ran on: the machine, the PostgreSQL server, and the code."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness.database import server_settings
from harness.processes import machine_busy_seconds

REPO = Path(__file__).resolve().parent.parent.parent
QUIET_PERCENT = 15.0
ENGINE_PATHS = ["postgit-core", "postgit-server", "plugins/postgit-builtins", "bench/postgit-bench-plugin"]


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        return None
    return None


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=False)  # noqa: S603, S607
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def busy_percent(seconds: float = 1.0) -> float:
    """How busy the machine's CPUs are over ``seconds`` (100 = every core busy): other load skews every figure."""
    busy_before, total_before = machine_busy_seconds()
    time.sleep(seconds)
    busy_after, total_after = machine_busy_seconds()
    return round(100 * (busy_after - busy_before) / max(total_after - total_before, 1e-9), 1)


def wait_until_quiet(timeout: float, threshold: float = QUIET_PERCENT) -> tuple[float, float]:
    """Wait up to ``timeout`` seconds for the CPUs to be less than ``threshold`` % busy over 2 s.

    Returns the seconds waited and the last busy share seen.
    """
    begin = time.monotonic()
    busy = busy_percent(2.0)
    while busy >= threshold and time.monotonic() - begin < timeout:
        busy = busy_percent(2.0)
    return time.monotonic() - begin, busy


def describe(url: str, embedded: bool) -> dict[str, Any]:
    """Cores, memory, load, Python, PostgreSQL's version and settings, and the code's git commit."""
    dirty = _git("status", "--porcelain", "--", *ENGINE_PATHS)
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
        "cpu_busy_percent_before_start": busy_percent(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "postgres": {**server_settings(url), "embedded": embedded},
        "git": {
            "commit": _git("rev-parse", "HEAD"),
            "engine_paths_modified": sorted({line.split(maxsplit=1)[1] for line in dirty.splitlines()})
            if dirty
            else [],
        },
    }
