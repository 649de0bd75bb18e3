"""``pst status`` seen as a new user sees it: a cancelled wait, a failed node, an attempt its worker never finished."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from postgit_cli import Client
from tests.cli.conftest import Pst, ServerProcess, hit, sequence, shout, sleep, write_json
from tests.support.http_server import RecordingServer
from tests.support.processes import start_worker
from tests.support.waiting import wait_for_sync


def wait_status(pst: Pst, instance_id: str, *statuses: str, timeout: float = 30) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        row = pst.ok("status", instance_id, "--json").json()
        return row if row["status"] in statuses else None

    return wait_for_sync(reached, timeout=timeout, interval=0.1, what=f"instance {instance_id} to be {statuses}")


def header(text: str, name: str) -> str | None:
    """The value of one row of ``pst status``'s header (``Status``, ``Waiting``, ...), or None."""
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return line[len(name) :].strip()
    return None


def test_a_cancelled_instance_no_longer_says_what_it_waited_for(pst: Pst, tmp_path: Path, worker):
    pst.ok("deploy", str(write_json(tmp_path, "napper.json", sequence(shout(), sleep("nap", 600)))))
    instance_id = pst.ok("run", "napper").stdout.strip()
    wait_status(pst, instance_id, "waiting")
    assert "nap" in header(pst.ok("status", instance_id).stdout, "Waiting")

    pst.ok("i", "cancel", instance_id)
    text = pst.ok("status", instance_id).stdout
    assert header(text, "Status") == "cancelled"
    assert header(text, "Waiting") is None, text
    assert header(text, "Node") is None, text
    assert pst.ok("status", instance_id, "--json").json()["wait_reason"] is None


def test_a_failed_instance_names_the_node_and_its_type(pst: Pst, tmp_path: Path, worker, http_server: RecordingServer):
    call = hit("call", f"{http_server.url}/status/400", retry={"maxAttempts": 1})
    pst.ok("deploy", str(write_json(tmp_path, "doomed.json", sequence(shout("first"), call))))
    instance_id = pst.ok("run", "doomed").stdout.strip()
    wait_status(pst, instance_id, "failed")
    text = pst.ok("status", instance_id).stdout
    assert "None" not in text, text
    error = header(text, "Error")
    assert error is not None and error.startswith("node 'call' (HitEndpoint): "), text
    assert "400" in error
    assert header(text, "Node") is None, text


def test_an_interrupted_attempt_shows_in_status_and_watch(
    server: ServerProcess, pst: Pst, tmp_path: Path, http_server: RecordingServer
):
    flow = sequence(shout("first"), hit("slow", f"{http_server.url}/block/interrupted", timeout=60), shout("last"))
    pst.ok("deploy", str(write_json(tmp_path, "fragile.json", flow)))
    watch = pst.popen("run", "fragile", "--watch")
    try:
        doomed = start_worker(server.database_url, tmp_path, 0)
        try:
            assert http_server.arrival("interrupted").wait(30), "the slow step never started"
            instance_id = pst.ok("i", "ls", "--json").json()[0]["id"]
            wait_started(server.url, instance_id, "slow")
            doomed.kill()  # mid-step: its lease expires, and the next worker takes the instance over
        finally:
            doomed.stop()
        survivor = start_worker(server.database_url, tmp_path, 1)
        try:
            row = wait_status(pst, instance_id, "completed", "failed", "cancelled")
            stdout, stderr = watch.communicate(timeout=60)
        finally:
            survivor.stop()
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.communicate()
    assert row["status"] == "completed", row["error"]

    steps = [(step["node_id"], step["attempt"], step["status"]) for step in row["steps"]]
    # the attempt cut off is charged: the worker died while running it
    assert steps == [
        ("first", 1, "completed"),
        ("slow", 1, "failed"),
        ("slow", 2, "completed"),
        ("last", 1, "completed"),
    ]
    interrupted = row["steps"][1]
    assert interrupted["error"]["message"] == "the worker died while running node 'slow'"
    assert f"-{doomed.pid}-" in interrupted["worker_id"]  # <host>-<pid>-<random>: the worker that was killed
    assert row["steps_total"] == 4
    [interruption] = row["interruptions"]
    assert interruption["worker"] == interrupted["worker_id"]
    assert interruption["taken_over_by"] != interruption["worker"]

    text = pst.ok("status", instance_id).stdout
    assert f"worker {interruption['worker']} stopped while it ran this instance" in header(text, "Interrupted")
    step_lines = [line.split() for line in text.splitlines()]
    assert next(line[:3] for line in step_lines if line[:1] == ["slow"]) == ["slow", "1", "failed"]
    assert any(line[:3] == ["slow", "2", "completed"] for line in step_lines)

    assert watch.returncode == 0, stderr
    assert "slow  interrupted (attempt 1): its worker stopped; it is run again" in stdout
    assert f"worker {interruption['worker']} stopped; worker {interruption['taken_over_by']}" in stdout
    assert len(http_server.hits("/block/interrupted")) == 2


def wait_started(api_url: str, instance_id: str, node_id: str) -> None:
    """Wait until the instance's activity log says ``node_id`` started (a start is written within 50 ms)."""
    with Client(api_url) as client, client.event_stream(instance_id, read_timeout=30) as stream:
        for event in stream:
            data = json.loads(event.data)
            if data["kind"] == "step_started" and data["node_id"] == node_id:
                return
    raise AssertionError(f"the event stream of {instance_id} ended before {node_id} started")
