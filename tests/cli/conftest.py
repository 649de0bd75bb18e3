"""Fixtures for the CLI's tests: ``pst`` as a subprocess against real ``postgit-server`` and ``postgit-worker``."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.ports import free_port
from tests.support.processes import Process, running_workers, script
from tests.support.server import serving_in_thread, start_server

TOKEN = "cli-test-token"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "packaging: builds and installs a package in a fresh virtual environment")
    config.addinivalue_line("markers", "server_process: the test's server is a postgit-server process")


@dataclass
class Result:
    """What one ``pst`` run did."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.returncode == 0, self.describe()
        return json.loads(self.stdout)

    def describe(self) -> str:
        return f"pst {' '.join(self.args)} -> {self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


def cli_env(api_url: str | None = None, token: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a ``pst`` run: no inherited Postgit settings, plain output."""
    # no inherited Postgit settings, and no terminal size (a test runner may set one): tables at full width
    skipped = {"DC_API_URL", "COLUMNS", "LINES"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTGIT_") and k not in skipped}
    env["NO_COLOR"] = "1"
    if api_url is not None:
        env["DC_API_URL"] = api_url
    if token is not None:
        env["POSTGIT_API_TOKEN"] = token
    env.update(extra)
    return env


class Pst:
    """Runs the installed ``pst`` console script against one server URL."""

    def __init__(self, api_url: str | None, token: str | None = None, program: str | None = None):
        self.api_url = api_url
        self.token = token
        self.program = program or script("pst")

    def __call__(self, *args: str, timeout: float = 60, cwd: Path | None = None, **env: str) -> Result:
        completed = subprocess.run(
            [self.program, *args],
            env=cli_env(self.api_url, self.token, **env),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
        )
        return Result(list(args), completed.returncode, completed.stdout, completed.stderr)

    def ok(self, *args: str, **kwargs: Any) -> Result:
        result = self(*args, **kwargs)
        assert result.returncode == 0, result.describe()
        return result

    def popen(self, *args: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [self.program, *args],
            env=cli_env(self.api_url, self.token, **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def assert_error(result: Result, *fragments: str, exit_code: int | None = None) -> str:
    """The run failed with exactly one ``error: ...`` line on stderr containing every fragment; returns it."""
    assert result.returncode != 0, result.describe()
    if exit_code is not None:
        assert result.returncode == exit_code, result.describe()
    assert "Traceback" not in result.stderr, result.describe()
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.describe()
    line = lines[0]
    assert line.startswith("error: "), result.describe()
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    return line


def write_json(directory: Path, name: str, value: Any) -> Path:
    path = directory / name
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def shout(node_id: str = "shout", text: str = "hello", **extra: Any) -> dict[str, Any]:
    node: dict[str, Any] = {"id": node_id, "type": "Shout", "params": {"text": text}}
    node.update(extra)
    return node


def sleep(node_id: str = "nap", seconds: float = 1) -> dict[str, Any]:
    return {"id": node_id, "type": "Sleep", "params": {"seconds": seconds}}


def hit(node_id: str, url: str, **extra: Any) -> dict[str, Any]:
    node: dict[str, Any] = {"id": node_id, "type": "HitEndpoint", "params": {"url": url}}
    node.update(extra)
    return node


def sequence(*children: dict[str, Any]) -> dict[str, Any]:
    return {"id": "root", "type": "Sequence", "children": list(children)}


class ServerProcess:
    """A ``postgit-server`` subprocess on a fixed port, which a test may kill and start again."""

    def __init__(self, database_url: str, log_dir: Path, **env: str):
        self.database_url = database_url
        self.log_dir = log_dir
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: Process | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log_name = f"server-{self.port}-{self.starts}.log"
        self.process, _ = start_server(self.database_url, self.log_dir, port=self.port, log_name=log_name, **self.env)

    def kill(self) -> None:
        """SIGKILL, as a crash would (and close its log)."""
        assert self.process is not None
        self.process.kill()
        self.process.stop()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


@contextmanager
def api_server(request: pytest.FixtureRequest, database_url: str, tmp_path: Path, **env: str) -> Iterator[Any]:
    """The server ``pst`` talks to: uvicorn in a thread of the test process, or a ``postgit-server`` process (a
    :class:`ServerProcess`) for a test marked ``server_process`` (one that kills it, restarts it or reads its log).

    ``env``: the server's ``POSTGIT_*`` settings, of which a threaded server takes ``POSTGIT_API_TOKEN``.
    """
    if request.node.get_closest_marker("server_process"):
        process = ServerProcess(database_url, tmp_path, **env)
        process.start()
        try:
            yield process
        finally:
            process.stop()
        return
    assert set(env) <= {"POSTGIT_API_TOKEN"}, env
    with serving_in_thread(database_url, api_token=env.get("POSTGIT_API_TOKEN")) as threaded:
        yield threaded


@pytest.fixture
def server(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> Iterator[Any]:
    """A running server without an API token (see :func:`api_server`)."""
    with api_server(request, database_url, tmp_path) as running:
        yield running


@pytest.fixture
def auth_server(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> Iterator[Any]:
    """A running server that requires ``TOKEN`` (see :func:`api_server`)."""
    with api_server(request, database_url, tmp_path, POSTGIT_API_TOKEN=TOKEN) as running:
        yield running


@pytest.fixture
def pst(server: ServerProcess) -> Pst:
    """``pst`` talking to the ``server`` fixture."""
    return Pst(server.url)


@pytest.fixture
def worker(database_url: str, tmp_path: Path) -> Iterator[list[Process]]:
    """One ``postgit-worker`` process (short leases) on the test's database."""
    with running_workers(database_url, tmp_path, count=1) as processes:
        yield processes
