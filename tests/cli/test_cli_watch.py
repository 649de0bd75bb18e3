"""``pst run --watch``: live steps over server-sent events, the final state, the exit code, reconnection."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import Pst, ServerProcess, hit, sequence, shout, sleep, write_json
from tests.support.http_server import RecordingServer
from tests.support.waiting import wait_for_sync


class Watch:
    """A ``pst run --watch`` running in the background, its output collected line by line."""

    def __init__(self, process: subprocess.Popen[str]):
        self.process = process
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._threads = [
            threading.Thread(target=self._pump, args=(process.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._pump, args=(process.stderr, self.stderr), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _pump(stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))

    def wait_for_line(self, fragment: str, timeout: float = 30) -> str:
        def found() -> str | None:
            assert self.process.poll() is None or any(fragment in line for line in self.stdout), self.describe()
            return next((line for line in self.stdout if fragment in line), None)

        return wait_for_sync(found, timeout=timeout, interval=0.05, what=f"a line with {fragment!r}")

    def finish(self, timeout: float = 60) -> int:
        code = self.process.wait(timeout)
        self.close()
        return code

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        for thread in self._threads:
            thread.join(10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def describe(self) -> str:
        return "stdout:\n" + "\n".join(self.stdout) + "\nstderr:\n" + "\n".join(self.stderr)


@pytest.fixture
def watch(pst: Pst) -> Iterator[Callable[..., Watch]]:
    """Start ``pst run --watch ...`` in the background; killed at the end of the test if still running."""
    started: list[Watch] = []

    def start(*args: str, **env: str) -> Watch:
        started.append(Watch(pst.popen("run", *args, "--watch", **env)))
        return started[-1]

    yield start
    for item in started:
        item.close()


def deploy(pst: Pst, tmp_path: Path, name: str, *children: dict) -> None:
    pst.ok("deploy", str(write_json(tmp_path, f"{name}.json", sequence(*children))))


def test_watch_an_instance_that_completes(pst: Pst, tmp_path: Path, worker):
    loud = shout("loud", "{{ input.name }}", assignTo="$.greeting")
    deploy(pst, tmp_path, "greet", loud, sleep("nap", 1), shout("end"))
    result = pst("run", "greet", "--input", '{"name": "ada"}', "--watch")
    assert result.returncode == 0, result.describe()
    lines = result.stdout.splitlines()
    text = result.stdout
    assert "loud  started (attempt 1)" in text
    assert any("loud  completed in" in line for line in lines)
    assert "nap  sleeping until " in text
    assert any("nap  completed in" in line for line in lines)
    assert any("end  completed in" in line for line in lines)
    assert sum("instance created" in line for line in lines) == 1
    order = [
        next(i for i, line in enumerate(lines) if marker in line)
        for marker in ("loud  started", "loud  completed", "nap  sleeping", "end  completed", "instance completed")
    ]
    assert order == sorted(order)
    outcome = next(line for line in lines if line.startswith("Instance "))
    assert outcome.endswith(" completed")
    assert '"ADA!"' in text  # the final state, fetched after the last event
    assert "watching instance" in result.stderr


def test_watch_json_prints_the_final_instance(pst: Pst, tmp_path: Path, worker):
    deploy(pst, tmp_path, "quick", shout("loud", "hey", assignTo="$.out"))
    result = pst("run", "quick", "--watch", "--json")
    assert result.returncode == 0, result.describe()
    row = result.json()
    assert row["status"] == "completed"
    assert row["state"] == {"input": {}, "out": {"text": "HEY!"}}
    assert [step["node_id"] for step in row["steps"]] == ["loud"]


def test_watch_an_instance_that_fails(pst: Pst, tmp_path: Path, worker, http_server: RecordingServer):
    deploy(pst, tmp_path, "doomed", shout("first"), hit("call", f"{http_server.url}/status/400"), shout("never"))
    result = pst("run", "doomed", "--watch")
    assert result.returncode == 1, result.describe()
    assert "first  completed" in result.stdout
    failed = next(line for line in result.stdout.splitlines() if "call  failed (attempt 1)" in line)
    assert "400" in failed
    assert "retrying" not in failed
    assert "never" not in result.stdout
    outcome = next(line for line in result.stdout.splitlines() if line.startswith("Instance "))
    assert " failed: " in outcome
    assert "400" in outcome

    as_json = pst("run", "doomed", "--watch", "--json")
    assert as_json.returncode == 1
    row = json.loads(as_json.stdout)
    assert row["status"] == "failed"
    assert row["error"]["node_id"] == "call"


def test_watch_shows_retries(pst: Pst, tmp_path: Path, worker, http_server: RecordingServer):
    retry = {"maxAttempts": 3, "initialInterval": 0.2}
    deploy(pst, tmp_path, "flaky", hit("call", f"{http_server.url}/flaky/watch/1", retry=retry, assignTo="$.answer"))
    result = pst("run", "flaky", "--watch")
    assert result.returncode == 0, result.describe()
    lines = result.stdout.splitlines()
    failed = next(line for line in lines if "call  failed (attempt 1)" in line)
    assert "500" in failed
    assert "; retrying in " in failed
    assert any("call  started (attempt 2)" in line for line in lines)
    assert any("call  completed" in line for line in lines)
    assert len(http_server.hits("/flaky/watch/1")) == 2

    deploy(pst, tmp_path, "broken", hit("call", f"{http_server.url}/status/503", retry={"maxAttempts": 1}))
    once = pst("run", "broken", "--watch")
    assert once.returncode == 1, once.describe()
    assert "retrying" not in once.stdout
    assert "call  failed (attempt 1)" in once.stdout


def test_watch_an_instance_that_is_cancelled(pst: Pst, tmp_path: Path, worker, watch):
    deploy(pst, tmp_path, "long", shout("loud"), sleep("nap", 120))
    running = watch("long")
    running.wait_for_line("nap  sleeping until")
    instance_id = pst.ok("i", "ls", "--json").json()[0]["id"]
    pst.ok("i", "cancel", instance_id)
    assert running.finish() == 1, running.describe()
    assert any("instance cancelled" in line for line in running.stdout)
    assert any(line.startswith(f"Instance {instance_id} cancelled") for line in running.stdout)


@pytest.mark.server_process
def test_watch_reconnects_when_the_stream_drops(server: ServerProcess, pst: Pst, tmp_path: Path, worker, watch):
    deploy(pst, tmp_path, "patient", shout("before"), sleep("nap", 3), shout("after", assignTo="$.done"))
    running = watch("patient")
    running.wait_for_line("nap  sleeping until")
    server.kill()  # the stream breaks off mid-instance
    server.start()  # same port; the worker carries on meanwhile
    assert running.finish() == 0, running.describe()
    assert any("reconnecting" in line for line in running.stderr), running.describe()
    assert any("after  completed" in line for line in running.stdout)
    # Every event is printed once, however often the stream was opened.
    assert sum("before  started" in line for line in running.stdout) == 1
    assert sum("instance created" in line for line in running.stdout) == 1
    assert sum("nap  sleeping until" in line for line in running.stdout) == 1
    assert any(line.startswith("Instance ") and line.endswith(" completed") for line in running.stdout)


@pytest.mark.server_process
def test_watch_gives_up_when_the_server_stays_away(server: ServerProcess, pst: Pst, tmp_path: Path, worker, watch):
    deploy(pst, tmp_path, "orphan", shout("before"), sleep("nap", 60))
    running = watch("orphan", POSTGIT_WATCH_RECONNECT_SECONDS="1")
    running.wait_for_line("nap  sleeping until")
    server.kill()
    code = running.finish()
    assert code == 1, running.describe()
    last = running.stderr[-1]
    assert last.startswith("error: lost the event stream of instance ")
    assert server.url in last
    assert "pst status" in last
