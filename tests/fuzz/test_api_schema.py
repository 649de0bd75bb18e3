"""The REST API fuzzed from its own OpenAPI schema by schemathesis (``st run``), against a ``postgit-server`` process.

The run is the one a team would make before trusting the schema: every check (``--checks all``: server errors,
status codes, content types, headers and bodies as documented, valid data accepted and invalid data refused,
required headers, unsupported methods, auth enforced, resources usable after they are created), in the examples,
coverage, fuzzing and stateful phases, with valid and invalid random data, and with the repository's
``schemathesis.toml`` (what the schema cannot state). It passes only when schemathesis reports no failure.

Before fuzzing, a worker runs seeded instances to every kind of end (completed, failed, cancelled, waiting), so that
lists, steps, events, workers and the outbox have rows to describe; ``schemathesis_hooks`` makes some valid cases
name them. The run is repeated with ``POSTGIT_API_TOKEN`` set and the token sent (fewer cases), where the schema
declares bearer security and schemathesis checks that requests without the token, or with a wrong one, are refused.

The seed is random and printed; ``POSTGIT_FUZZ_SEED=<seed>`` runs the same cases again.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import running_workers, script
from tests.support.server import parse_sse, running_server
from tests.support.waiting import wait_for_sync

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "fuzz-token-0123456789"
REQUEST_TIMEOUT = 5.0
"""Seconds a request may take; also how long schemathesis reads an event stream that does not end."""
EXAMPLES = 20
"""Cases per operation in the fuzzing phase (and steps in the stateful one) without a token."""
EXAMPLES_WITH_TOKEN = 8
RUN_TIMEOUT = 240
"""Seconds ``st run`` may take (under a minute on a busy machine); the test's own timeout leaves room for setup."""

WORKFLOW = "fuzz"
SHOUT = {"id": "s", "type": "Shout", "params": {"text": "x"}}
STEPS = {
    "id": "root",
    "type": "Sequence",
    "children": [
        {"id": "mail", "type": "SendEmail", "params": {"to": ["ops@example.com"], "subject": "fuzz", "body": {"n": 1}}},
        {"id": "loud", "type": "Shout", "params": {"text": "ok"}, "assignTo": "$.loud"},
        {"id": "bad", "type": "Shout", "params": {"text": {"$ref": "$.input.missing"}}, "retry": {"max_attempts": 1}},
    ],
}
SLEEP = {"id": "nap", "type": "Sleep", "params": {"seconds": 3600}}
SCHEDULE = "fuzz-yearly"


@dataclass
class Seeded:
    """Instances that exist before fuzzing starts, by how they ended."""

    completed: str
    failed: str
    cancelled: str
    waiting: str
    """Asleep for an hour (until the fuzzer cancels it)."""
    schedule: str = SCHEDULE
    """A paused yearly schedule that has fired once (a trigger)."""

    @property
    def finished(self) -> list[str]:
        return [self.completed, self.failed, self.cancelled]

    def existing(self) -> dict[str, list[dict[str, Any]]]:
        """Path parameters naming things that exist, by path template (for ``schemathesis_hooks``)."""
        instances = [{"instance_id": id_} for id_ in [*self.finished, self.waiting]]
        return {
            "/workflows/{name}": [{"name": WORKFLOW}],
            "/workflows/{name}/versions/{version}": [{"name": WORKFLOW, "version": 1}],
            "/workflows/{name}/instances": [{"name": WORKFLOW}],
            # replayed over the seeded instances that finished
            "/workflows/{name}/check": [{"name": WORKFLOW}],
            "/instances/{instance_id}": instances,
            "/instances/{instance_id}/cancel": instances,
            # finished ones only: the waiting instance's stream stays open until the request times out
            "/instances/{instance_id}/events": [{"instance_id": id_} for id_ in self.finished],
            # unfinished, so a delete is refused and the seeded instances stay for the other operations
            "DELETE /instances/{instance_id}": [{"instance_id": self.waiting}],
            "/schedules/{name}": [{"name": self.schedule}],
            "/schedules/{name}/pause": [{"name": self.schedule}],
            "/schedules/{name}/resume": [{"name": self.schedule}],
            "/schedules/{name}/trigger": [{"name": self.schedule}],
            "/schedules/{name}/backfill": [{"name": self.schedule}],
            # another one, so the fuzzer's deletes leave this one for the other operations
            "DELETE /schedules/{name}": [{"name": f"{self.schedule}-doomed"}],
        }


def seed(url: str, headers: dict[str, str]) -> Seeded:
    """Deploy three workflows and run instances of them (a worker is running) to a completed, failed, cancelled
    and waiting end; create two paused schedules and trigger one."""
    with httpx.Client(base_url=url, headers=headers, timeout=10) as client:

        def deploy(name: str, definition: dict[str, Any]) -> None:
            response = client.post("/workflows", json={"name": name, "definition": definition})
            assert response.status_code == 201, response.text

        def start(name: str) -> str:
            response = client.post(f"/workflows/{name}/instances", json={"input": {"n": 1}})
            assert response.status_code == 201, response.text
            return response.json()["id"]

        def wait_until(instance_id: str, status: str) -> None:
            def reached() -> bool:
                return client.get(f"/instances/{instance_id}").json()["status"] == status

            wait_for_sync(reached, timeout=30, interval=0.1, what=f"instance {instance_id} to be {status}")

        deploy(WORKFLOW, SHOUT)
        deploy(f"{WORKFLOW}-steps", STEPS)
        deploy(f"{WORKFLOW}-sleep", SLEEP)
        seeded = Seeded(
            completed=start(WORKFLOW),
            failed=start(f"{WORKFLOW}-steps"),
            cancelled=start(f"{WORKFLOW}-sleep"),
            waiting=start(f"{WORKFLOW}-sleep"),
        )
        wait_until(seeded.completed, "completed")
        wait_until(seeded.failed, "failed")
        wait_until(seeded.waiting, "waiting")
        wait_until(seeded.cancelled, "waiting")
        assert client.post(f"/instances/{seeded.cancelled}/cancel").status_code == 200
        for name in (SCHEDULE, f"{SCHEDULE}-doomed"):
            body = {"name": name, "workflow": WORKFLOW, "cron": "0 0 1 1 *", "paused": True}
            response = client.post("/schedules", json=body)
            assert response.status_code == 201, response.text
        assert client.post(f"/schedules/{SCHEDULE}/trigger").status_code == 200
        assert client.get("/outbox").json(), "the SendEmail step parked its message"
        assert client.get("/workers").json(), "the worker is live"
    return seeded


@dataclass
class FuzzRun:
    """What ``st run`` said, and the statuses it got per operation."""

    seed: int
    exit_code: int
    output: str
    statuses: dict[str, Counter[int]]

    @property
    def passed_phases(self) -> list[str]:
        """The phases schemathesis ran and passed (``✅ Coverage (in 8.37s)``); a skipped one shows ``⏭``."""
        return re.findall(r"✅\s+(Examples|Coverage|Fuzzing|Stateful) \(in", self.output)

    @property
    def server_errors(self) -> int:
        return sum(n for counter in self.statuses.values() for status, n in counter.items() if status >= 500)

    def summary(self, title: str) -> str:
        cases = re.search(r"(\d+) generated", self.output)
        lines = [
            f"{title}: seed {self.seed}, exit code {self.exit_code}, {cases.group(1) if cases else '?'} cases, "
            f"phases passed: {', '.join(self.passed_phases)}"
        ]
        for operation in sorted(self.statuses):
            statuses = " ".join(f"{status}x{n}" for status, n in sorted(self.statuses[operation].items()))
            lines.append(f"  {operation}: {statuses}")
        return "\n".join(lines)


def run_schemathesis(url: str, tmp_path: Path, seeded: Seeded, *, token: str | None, max_examples: int) -> FuzzRun:
    """``st run`` with every check and the coverage, fuzzing and stateful phases against the server at ``url``."""
    seed = int(os.environ.get("POSTGIT_FUZZ_SEED") or random.randrange(2**32))
    calls = tmp_path / "calls.jsonl"
    args = [
        script("st"),
        "--config-file",
        str(ROOT / "schemathesis.toml"),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--mode",
        "all",
        "--max-examples",
        str(max_examples),
        "--seed",
        str(seed),
        "--generation-database",
        "none",
        "--request-timeout",
        str(REQUEST_TIMEOUT),
        "--workers",
        "2",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path / "report"),
    ]
    if token:
        args += ["--header", f"Authorization: Bearer {token}"]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SCHEMATHESIS_HOOKS": "tests.fuzz.schemathesis_hooks",
        "POSTGIT_FUZZ_EXISTING": json.dumps(seeded.existing()),
        "POSTGIT_FUZZ_CALLS": str(calls),
    }
    result = subprocess.run(
        args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False
    )
    statuses: dict[str, Counter[int]] = {}
    for line in calls.read_text().splitlines() if calls.exists() else []:
        call = json.loads(line)
        statuses.setdefault(call["operation"], Counter())[call["status"]] += 1
    return FuzzRun(seed, result.returncode, result.stdout + result.stderr, statuses)


def check_event_streams(url: str, headers: dict[str, str], seeded: Seeded) -> None:
    """An unknown instance's stream is a 404; a finished one's replays and ends; an unfinished one's stays open."""
    with httpx.Client(base_url=url, headers=headers, timeout=REQUEST_TIMEOUT) as client:
        started = client.post(f"/workflows/{WORKFLOW}-sleep/instances", json={})
        assert started.status_code == 201, started.text

        unknown = client.get(f"/instances/{uuid.uuid4()}/events")
        assert unknown.status_code == 404, unknown.text
        assert unknown.headers["content-type"] == "application/json"
        assert "does not exist" in unknown.json()["detail"]

        finished = client.get(f"/instances/{seeded.failed}/events")
        assert finished.status_code == 200
        assert [event.event for event in parse_sse(finished.text)][-1] == "instance_failed"

        with client.stream("GET", f"/instances/{started.json()['id']}/events") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            first = next(stream.iter_lines())
            assert re.match(r"(event|id|data): ", first), first


def fuzz_server(database_url: str, tmp_path: Path, *, token: str | None, max_examples: int) -> FuzzRun:
    env = {"POSTGIT_API_TOKEN": token} if token else {}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with running_server(database_url, tmp_path, **env) as (process, url), running_workers(database_url, tmp_path):
        seeded = seed(url, headers)
        check_event_streams(url, headers, seeded)  # first: the fuzzer may delete what it finds
        paths = httpx.get(f"{url}/openapi.json", headers=headers).json()["paths"]
        operations = sum(len(methods) for methods in paths.values())
        run = run_schemathesis(url, tmp_path, seeded, token=token, max_examples=max_examples)
        print("\n" + run.summary(f"st run --checks all, auth {'on' if token else 'off'}"))
        assert run.exit_code == 0, f"schemathesis failed (seed {run.seed}):\n{run.output}"
        assert {"Coverage", "Fuzzing", "Stateful"} <= set(run.passed_phases), run.output
        assert process.alive(), process.output()
    assert len(run.statuses) == operations >= 13, "every operation was called"
    assert run.server_errors == 0
    return run


@pytest.mark.timeout(RUN_TIMEOUT + 120)
def test_api_conforms_to_its_schema(database_url: str, tmp_path: Path) -> None:
    run = fuzz_server(database_url, tmp_path, token=None, max_examples=EXAMPLES)
    assert all(run.statuses[label][200] for label in run.statuses if label.startswith("GET ")), run.statuses
    deploys = run.statuses["POST /workflows"]
    assert deploys[201] + deploys[200], (
        f"valid deploys (new, or a version deployed before) were among the cases: {deploys}"
    )
    assert not any(counter[401] for counter in run.statuses.values()), "no token, no 401"


@pytest.mark.timeout(RUN_TIMEOUT + 120)
def test_api_with_a_token_conforms_to_its_schema(database_url: str, tmp_path: Path) -> None:
    run = fuzz_server(database_url, tmp_path, token=TOKEN, max_examples=EXAMPLES_WITH_TOKEN)
    assert sum(counter[401] for counter in run.statuses.values()), "requests without the token were refused"
