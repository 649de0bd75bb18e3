"""PostgreSQL's own commit rate on this machine: the yardstick Postgit's throughput is compared with.

One transaction is one single-row ``UPDATE`` by primary key on a 1000-row table, committed on its own (autocommit),
sent through psycopg's async API from one Python process, the way a worker talks to PostgreSQL. With ``pgbench``
installed, the same transaction is also measured with it, as PEERS.md did.
"""

from __future__ import annotations

import asyncio
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from harness.database import connect

ROWS = 1000
UPDATE = "UPDATE bench_ceiling SET n = n + 1 WHERE id = %s"
WARMUP_SECONDS = 0.5
SLICES = 3


def create_table(url: str) -> None:
    """The ceiling's table: 1000 rows keyed by id."""
    with connect(url) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_ceiling (id integer PRIMARY KEY, n bigint NOT NULL)")
        conn.execute(
            "INSERT INTO bench_ceiling (id, n) SELECT g, 0 FROM generate_series(1, %s) g ON CONFLICT DO NOTHING",
            (ROWS,),
        )
        conn.execute("VACUUM ANALYZE bench_ceiling")


async def _commit_loop(conn: psycopg.AsyncConnection[Any], stop_at: float, counts: list[int]) -> None:
    count = 0
    while time.perf_counter() < stop_at:
        await conn.execute(UPDATE, (random.randint(1, ROWS),), prepare=True)
        count += 1
    counts.append(count)


async def psycopg_rate(url: str, connections: int, seconds: float) -> float:
    """Commits per second with ``connections`` connections, each committing one UPDATE after another."""
    conns = [await psycopg.AsyncConnection.connect(url, autocommit=True) for _ in range(connections)]
    try:
        warm = time.perf_counter() + min(WARMUP_SECONDS, seconds)
        await asyncio.gather(*(_commit_loop(conn, warm, []) for conn in conns))
        counts: list[int] = []
        begin = time.perf_counter()
        await asyncio.gather(*(_commit_loop(conn, begin + seconds, counts) for conn in conns))
        return sum(counts) / (time.perf_counter() - begin)
    finally:
        for conn in conns:
            await conn.close()


def pgbench_rate(url: str, clients: int, seconds: float) -> float | None:
    """The same transaction through ``pgbench -M prepared``; None when pgbench is not installed or fails."""
    binary = shutil.which("pgbench")
    if binary is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "update.sql"
        script.write_text(
            f"\\set id random(1, {ROWS})\nUPDATE bench_ceiling SET n = n + 1 WHERE id = :id;\n", encoding="utf-8"
        )
        args = [binary, "-n", "-M", "prepared", "-j", str(min(2, clients)), "-c", str(clients),
                "-T", str(max(1, round(seconds))), "-f", str(script), url]  # fmt: skip
        result = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60, check=False)  # noqa: S603
    match = re.search(r"tps = ([0-9.]+)", result.stdout)
    return round(float(match.group(1)), 1) if result.returncode == 0 and match else None


def measure(url: str, connections: tuple[int, ...], seconds: float, with_pgbench: bool) -> dict[str, Any]:
    """The ceiling at each connection count: psycopg always, pgbench when asked and installed.

    Each count's ``seconds`` are spent in :data:`SLICES` slices, taken in turn with the other counts', and the
    median slice is the figure: a burst of other work on the machine then spoils one slice, not the figure.
    """
    create_table(url)
    slice_seconds = seconds / SLICES
    result: dict[str, Any] = {
        "transaction": "UPDATE bench_ceiling SET n = n + 1 WHERE id = random(1..1000), autocommit",
        "seconds_each": seconds,
        "slices": SLICES,
        "psycopg": {},
        "psycopg_slices": {str(count): [] for count in connections},
        "pgbench": None,
    }
    use_pgbench = with_pgbench and shutil.which("pgbench") is not None
    if use_pgbench:
        result["pgbench_slices"] = {str(count): [] for count in connections}
    for _ in range(SLICES):
        for count in connections:
            rate = asyncio.run(psycopg_rate(url, count, slice_seconds))
            result["psycopg_slices"][str(count)].append(round(rate, 1))
            if use_pgbench:
                result["pgbench_slices"][str(count)].append(pgbench_rate(url, count, slice_seconds))
    result["psycopg"] = {count: statistics.median(rates) for count, rates in result["psycopg_slices"].items()}
    if use_pgbench:
        result["pgbench"] = {
            count: round(statistics.median(rate for rate in rates if rate is not None), 1) if any(rates) else None
            for count, rates in result["pgbench_slices"].items()
        }
    return result
