"""``postgit-worker`` and ``postgit-server`` started while their database cannot be reached, or refuses them.

They wait instead of exiting: they retry with capped exponential backoff, log ``database unreachable: ...;
retrying`` once and ``database reachable again`` once however many attempts it takes, start as usual once the
database answers, and SIGTERM or Ctrl-C end the wait at once with exit status 0. A configuration error (a wrong
database name, a bad ``POSTGIT_DB_POOL_MAX``) is still one line and exit status 2.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from postgit.service import WorkflowService
from tests.faults.conftest import refuse_connections
from tests.support.engine import wait_finished
from tests.support.ports import free_port
from tests.support.processes import Process, script, worker_env
from tests.support.server import server_env
from tests.support.tcp_proxy import tcp_proxy
from tests.support.waiting import wait_for_sync

PROGRAMS = ["postgit-worker", "postgit-server"]
SHOUT = {"id": "s", "type": "Shout", "params": {"text": "hi"}}
UNREACHABLE = "database unreachable: "
REACHABLE = "database reachable again"


class Started:
    """A ``postgit-worker`` or ``postgit-server`` process, and how to tell that it serves."""

    def __init__(self, program: str, database_url: str, tmp_path: Path, **env: str):
        self.program = program
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        worker = program == "postgit-worker"
        environment = worker_env(database_url, **env) if worker else server_env(database_url, self.port, **env)
        self.process = Process([script(program)], environment, tmp_path / f"{program}.log")

    def log(self) -> str:
        return self.process.log_path.read_text(errors="replace")

    def serving(self) -> bool:
        assert self.process.alive(), f"{self.program} exited:\n{self.log()}"
        if self.program == "postgit-worker":
            return " started with node types " in self.log()
        try:
            return httpx.get(f"{self.url}/health", timeout=5).status_code == 200
        except httpx.TransportError:
            return False


def waited_once(log: str) -> None:
    assert log.count(UNREACHABLE) == 1, log
    assert log.count(REACHABLE) == 1, log
    assert "Traceback" not in log


@pytest.mark.parametrize("program", PROGRAMS)
async def test_a_process_started_before_its_database_waits_for_it(
    program: str, database_url: str, service: WorkflowService, tmp_path: Path
):
    with tcp_proxy(database_url) as proxy:
        proxy.set_mode("reject")  # every connection is closed at once: a database that drops its clients
        started = Started(program, proxy.url_for(database_url), tmp_path)
        try:
            wait_for_sync(
                lambda: proxy.attempts >= 4 and UNREACHABLE in started.log(),
                timeout=60,
                interval=0.05,
                what=f"{program} to try to connect four times",
            )
            assert started.process.alive()
            assert started.log().count(UNREACHABLE) == 1, started.log()
            assert "server closed the connection unexpectedly; retrying" in started.log()
            assert not started.serving()

            proxy.set_mode("forward")
            wait_for_sync(started.serving, timeout=60, interval=0.1, what=f"{program} to start")
            if program == "postgit-worker":
                await service.deploy("w", SHOUT)
                row, _ = await service.start("w")
                assert (await wait_finished(service.store, row["id"]))["status"] == "completed"
            else:
                async with httpx.AsyncClient(base_url=started.url, timeout=10) as client:
                    deployed = await client.post("/workflows", json={"name": "w", "definition": SHOUT})
                    assert deployed.status_code == 201, deployed.text
            assert started.process.terminate() == 0
        finally:
            started.process.stop()
    waited_once(started.log())


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("program", PROGRAMS)
def test_a_signal_ends_the_wait_for_the_database_at_once(program: str, signum: int, database_url: str, tmp_path):
    nothing_listens = make_conninfo(database_url, host="127.0.0.1", port=str(free_port()))
    started = Started(program, nothing_listens, tmp_path)
    try:
        wait_for_sync(lambda: UNREACHABLE in started.log(), timeout=30, what=f"{program} to wait for the database")
        started.process.popen.send_signal(signum)
        assert started.process.popen.wait(10) == 0
    finally:
        started.process.stop()
    log = started.log()
    assert "Connection refused; retrying" in log
    assert "stopped while waiting for the database" in log
    assert "Traceback" not in log


async def test_worker_and_server_wait_out_too_many_connections_at_start(
    database_url: str, limited_role: str, service: WorkflowService, tmp_path: Path
):
    refuse_connections(database_url, limited_role, refuse=True)
    role_url = make_conninfo(database_url, user=limited_role)
    worker = Started("postgit-worker", role_url, tmp_path)
    server = Started("postgit-server", role_url, tmp_path)
    try:
        refused = f'too many connections for role "{limited_role}"; retrying'
        for started in (worker, server):
            wait_for_sync(lambda s=started: refused in s.log(), timeout=30, what=f"{started.program} to be refused")
            assert started.process.alive()

        refuse_connections(database_url, limited_role, refuse=False)
        for started in (worker, server):
            wait_for_sync(started.serving, timeout=60, interval=0.1, what=f"{started.program} to start")
        await service.deploy("w", SHOUT)
        row, _ = await service.start("w")
        assert (await wait_finished(service.store, row["id"]))["status"] == "completed"
        for started in (worker, server):
            assert started.process.terminate() == 0
    finally:
        for started in (worker, server):
            started.process.stop()
    for started in (worker, server):
        waited_once(started.log())


@pytest.mark.parametrize("program", PROGRAMS)
def test_a_database_that_does_not_exist_is_still_one_line_and_exit_2(program: str, database_url: str, tmp_path):
    result = run_to_exit(program, make_conninfo(database_url, dbname="no_such_database_here"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"{program}: cannot use the database at DATABASE_URL: connection failed: connection to server at "
        f'"127.0.0.1", port {make_port(database_url)} failed: FATAL:  database "no_such_database_here" does not exist'
    ]


@pytest.mark.parametrize("program", PROGRAMS)
def test_a_bad_pool_cap_is_one_line_and_exit_2(program: str, database_url: str):
    # every kind of bad value is in tests/unit/test_settings.py; here, how a process reports one
    result = run_to_exit(program, database_url, POSTGIT_DB_POOL_MAX="2.5")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [f"{program}: POSTGIT_DB_POOL_MAX='2.5' must be a whole number"]


def run_to_exit(program: str, database_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = worker_env(database_url, **env) if program == "postgit-worker" else server_env(database_url, 1, **env)
    return subprocess.run([script(program)], env=environment, capture_output=True, text=True, timeout=60, check=False)


def make_port(database_url: str) -> str:
    return str(conninfo_to_dict(database_url).get("port", 5432))
