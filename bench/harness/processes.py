"""The engine's real processes: ``postgit-server`` and ``postgit-worker``, started, watched and stopped."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from harness.config import WorkerEnv


def script(name: str) -> str:
    """The path of an installed console script, next to the running interpreter first."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise SystemExit(f"bench: the console script {name} is not installed (run `.venv/bin/uv sync`)")
    return found


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(database_url: str) -> dict[str, str]:
    """This process's environment without any ``POSTGIT_*`` setting, pointed at ``database_url``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("POSTGIT_")}
    env["DATABASE_URL"] = database_url
    return env


class Process:
    """A subprocess whose output goes to a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(args, env=env, stdout=self._log, stderr=subprocess.STDOUT)  # noqa: S603

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait(self, timeout: float) -> int | None:
        """Wait for the process to exit by itself (SIGTERM, then SIGKILL, after ``timeout``); the exit code."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout)
        return self.stop()

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, wait for the exit (SIGKILL after ``timeout``); the exit code."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        self._log.close()
        return self.popen.returncode

    def tail(self, lines: int = 20) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


SERVER_PROGRAM: str | None = None
"""The ``postgit-server`` to run instead of the installed one (``bench/compare_starts.py`` sets it)."""
WORKER_PROGRAM: str | None = None
"""The ``postgit-worker`` to run instead of the installed one (``bench/compare_w1.py`` sets it)."""
SERVER_ENV: dict[str, str] = {}
"""More environment for every server the harness starts (``bench/compare_starts.py`` sets it)."""


def start_server(database_url: str, log_dir: Path, timeout: float = 60.0) -> tuple[Process, str]:
    """Start ``postgit-server`` on a free loopback port; return it and its URL once ``/health`` answers."""
    port = free_port()
    env = base_env(database_url) | {"PORT": str(port), "POSTGIT_HOST": "127.0.0.1"} | SERVER_ENV
    program = SERVER_PROGRAM or script("postgit-server")
    process = Process(f"server-{port}", [program, "--log-level", "WARNING"], env, log_dir)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(f"postgit-server exited with {process.popen.returncode}:\n{process.tail()}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    process.stop()
    raise RuntimeError(f"postgit-server did not answer /health within {timeout:.0f}s:\n{process.tail()}")


def start_worker(database_url: str, settings: WorkerEnv, log_dir: Path, name: str) -> Process:
    """Start one ``postgit-worker`` process with the run's worker settings."""
    env = base_env(database_url) | settings.as_env()
    return Process(name, [WORKER_PROGRAM or script("postgit-worker"), "--log-level", "WARNING"], env, log_dir)


def attach_profiler(pid: int, raw_output: Path, log_dir: Path, name: str, rate: int = 200) -> Process:
    """Attach ``py-spy record`` to a running process (idle samples included, collapsed stacks); wait until it samples.

    py-spy writes ``raw_output`` when the process exits.
    """
    args = [
        script("py-spy"), "record", "--pid", str(pid), "--idle", "--format", "raw", "--rate", str(rate),
        "--output", str(raw_output),
    ]  # fmt: skip
    profiler = Process(name, args, dict(os.environ), log_dir)
    deadline = time.monotonic() + 30
    while "Sampling process" not in profiler.tail():
        if not profiler.alive() or time.monotonic() > deadline:
            profiler.stop()
            raise RuntimeError(f"py-spy did not start sampling pid {pid}:\n{profiler.tail()}")
        time.sleep(0.02)
    return profiler


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set size so far (``VmHWM``), in MB; None when it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU seconds the process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds(pids: list[int]) -> dict[int, float]:
    """CPU seconds of each PostgreSQL server process in ``pids`` that runs on this machine (others are left out)."""
    seconds: dict[int, float] = {}
    for pid in pids:
        try:
            if not Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"postgres"):
                continue
        except OSError:
            continue
        value = cpu_seconds(pid)
        if value is not None:
            seconds[pid] = value
    return seconds


def all_postgres_cpu_seconds() -> float:
    """CPU seconds of every PostgreSQL process on this machine (all databases' backends, autovacuum, checkpointer)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "cmdline").read_bytes().startswith(b"postgres"):
                continue
        except OSError:
            continue
        total += cpu_seconds(int(entry.name)) or 0.0
    return total


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, summed over its cores."""
    fields = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])
    ticks = os.sysconf("SC_CLK_TCK")
    return (total - idle) / ticks, total / ticks
