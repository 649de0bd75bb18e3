"""Start Postgit processes (workers) as real subprocesses, and stop or kill them."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def script(name: str) -> str:
    """Path of an installed console script, next to the running interpreter."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    assert found, f"console script {name} is not installed"
    return found


class Process:
    """A started subprocess whose output goes to a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(args, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)
        self._log.close()

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM and wait for a clean exit; returns the exit code."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
        code = self.popen.wait(timeout)
        self._log.close()
        return code

    def stop(self) -> None:
        if self.alive():
            try:
                self.terminate(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")


def worker_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTGIT_")}
    env.update(
        DATABASE_URL=database_url,
        POSTGIT_LEASE_SECONDS="2",
        POSTGIT_POLL_SECONDS="1",
        POSTGIT_SHUTDOWN_GRACE_SECONDS="5",
    )
    env.update(extra)
    return env


@contextmanager
def running_workers(database_url: str, tmp_path: Path, count: int = 1, **env: str) -> Iterator[list[Process]]:
    """Start ``count`` ``postgit-worker`` processes; stop them (SIGTERM, then SIGKILL) afterwards."""
    processes = [start_worker(database_url, tmp_path, index, **env) for index in range(count)]
    try:
        yield processes
    finally:
        for process in processes:
            process.stop()


def start_worker(database_url: str, tmp_path: Path, index: int = 0, **env: str) -> Process:
    log_path = tmp_path / f"worker-{index}-{os.urandom(3).hex()}.log"
    return Process([script("postgit-worker"), "--log-level", "INFO"], worker_env(database_url, **env), log_path)
