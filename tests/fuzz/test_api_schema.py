"""The REST API fuzzed from its own OpenAPI schema with schemathesis, against a ``postgit-server`` subprocess.

The schema is read from the running server's ``/openapi.json``. Every operation gets a bounded, derandomized set
of valid and of invalid cases; no answer may be a 5xx, and every answer's status, content type, headers and body
must be as the schema describes them. Before fuzzing, a worker runs seeded instances to every kind of end
(completed, failed, cancelled, waiting), so that lists, steps, events, workers and the outbox have rows to
describe, and the hooks below make some path parameters name things that exist. The run is repeated with
``POSTGIT_API_TOKEN`` set and the token sent (fewer cases), where schemathesis also checks that requests without
the token, or with a wrong one, are refused.

The cases are drawn from ``APIOperation.as_strategy`` with Hypothesis' ``@given``: schemathesis' own pytest
integration for schemas loaded at run time (``schemathesis.pytest.from_fixture``) does not work with pytest 9.2.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.processes import running_workers
from tests.support.server import parse_sse, running_server
from tests.support.waiting import wait_for_sync

TOKEN = "fuzz-token-0123456789"
REQUEST_TIMEOUT = 5.0
"""Seconds a request may take; also how long an event stream that does not end is read."""
EXAMPLES = 40
"""Cases per operation and generation mode without a token."""
EXAMPLES_WITH_TOKEN = 12

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
FUZZ_SETTINGS: dict[str, Any] = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
}

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
VALID_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,30}"


@dataclass
class Seeded:
    """Instances that exist before fuzzing starts, by how they ended."""

    completed: str
    failed: str
    cancelled: str
    waiting: str
    """Asleep for an hour (until the fuzzer cancels it)."""

    @property
    def finished(self) -> list[str]:
        return [self.completed, self.failed, self.cancelled]


@dataclass
class FuzzLog:
    """What the fuzzer sent and got back, per operation."""

    cases: Counter[str] = field(default_factory=Counter)
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    failures: dict[str, Counter[str]] = field(default_factory=dict)

    def response(self, operation: str, status: int) -> None:
        self.statuses.setdefault(operation, Counter())[status] += 1

    def failure(self, operation: str, check: str) -> None:
        self.failures.setdefault(operation, Counter())[check] += 1

    @property
    def server_errors(self) -> int:
        return sum(n for counter in self.statuses.values() for status, n in counter.items() if status >= 500)

    def summary(self, title: str) -> str:
        failed = sum(sum(counter.values()) for counter in self.failures.values())
        lines = [
            f"{title}: {len(self.cases)} operations, {self.cases.total()} cases, {self.server_errors} 5xx, "
            f"{failed} failed checks"
        ]
        for operation in sorted(self.statuses):
            statuses = " ".join(f"{status}x{n}" for status, n in sorted(self.statuses[operation].items()))
            failures = dict(self.failures.get(operation, {}))
            suffix = f"; FAILED {failures}" if failures else ""
            lines.append(f"  {operation}: {self.cases[operation]} cases; {statuses}{suffix}")
        return "\n".join(lines)


def seed(url: str, headers: dict[str, str]) -> Seeded:
    """Deploy three workflows and run instances of them (a worker is running) to a completed, failed, cancelled
    and waiting end."""
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
        assert client.get("/outbox").json(), "the SendEmail step parked its message"
        assert client.get("/workers").json(), "the worker is live"
    return seeded


def load_schema(url: str, headers: dict[str, str], seeded: Seeded, log: FuzzLog) -> Any:
    """The server's own schema, with hooks that mix existing things into the cases and record every answer."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", headers=headers, timeout=10)
    schema.config.update(base_url=url, request_timeout=REQUEST_TIMEOUT)
    instances = [*seeded.finished, seeded.waiting]
    existing: dict[str, list[dict[str, Any]]] = {
        "/workflows/{name}": [{"name": WORKFLOW}],
        "/workflows/{name}/versions/{version}": [{"name": WORKFLOW, "version": 1}],
        "/workflows/{name}/instances": [{"name": WORKFLOW}],
        "/instances/{instance_id}": [{"instance_id": id_} for id_ in instances],
        "/instances/{instance_id}/cancel": [{"instance_id": id_} for id_ in instances],
        # not the waiting instance: its stream lasts until the request times out
        "/instances/{instance_id}/events": [{"instance_id": id_} for id_ in seeded.finished],
    }
    deploys = st.fixed_dictionaries(
        {
            "name": st.from_regex(VALID_NAME, fullmatch=True),
            "definition": st.fixed_dictionaries(
                {
                    "id": st.just("s"),
                    "type": st.just("Shout"),
                    "params": st.fixed_dictionaries(
                        {"text": st.text(max_size=20), "exclamations": st.integers(-1, 11)}
                    ),
                }
            ),
        }
    )

    @schema.hook
    def before_generate_path_parameters(context: schemathesis.HookContext, strategy: Any) -> Any:
        known = existing.get(context.operation.path) if context.operation else None
        return st.one_of(strategy, st.sampled_from(known)) if known else strategy

    @schema.hook
    def before_generate_body(context: schemathesis.HookContext, strategy: Any) -> Any:
        if context.operation is None or context.operation.label != "POST /workflows":
            return strategy
        return st.one_of(strategy, deploys)

    @schema.hook
    def after_call(context: schemathesis.HookContext, case: schemathesis.Case, response: Any) -> None:
        log.response(case.operation.label, response.status_code)

    @schema.hook
    def after_validate(context: schemathesis.HookContext, case: schemathesis.Case, response: Any, results: Any) -> None:
        for result in results:
            if result.failure is not None:
                log.failure(case.operation.label, result.name)

    return schema


def generation_modes(operation: Any) -> list[GenerationMode]:
    """Valid cases for every operation; invalid ones too, unless it takes no input at all (``GET /health``)."""
    raw = operation.definition.raw
    if raw.get("parameters") or raw.get("requestBody") or raw.get("security"):
        return [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    return [GenerationMode.POSITIVE]


def fuzz(
    schema: Any,
    subtests: pytest.Subtests,
    log: FuzzLog,
    *,
    max_examples: int,
    checks: list[Any],
    headers: dict[str, str],
) -> list[str]:
    """Run every operation of ``schema`` with valid and invalid cases, one subtest each; returns their labels.

    ``headers`` (the token) go with every case; schemathesis takes them for the caller's own credentials.
    """
    labels = []
    for result in schema.get_all_operations():
        operation = result.ok()
        labels.append(operation.label)
        for mode in generation_modes(operation):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=max_examples, **FUZZ_SETTINGS)
            def run(case: schemathesis.Case) -> None:
                log.cases[case.operation.label] += 1
                case.call_and_validate(headers=headers, checks=checks)

            with subtests.test(msg=f"{operation.label} ({mode.value})"):
                run()
    return labels


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


def fuzz_server(
    database_url: str, tmp_path: Path, subtests: pytest.Subtests, *, token: str | None, max_examples: int
) -> FuzzLog:
    env = {"POSTGIT_API_TOKEN": token} if token else {}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    checks = [*CHECKS, ignored_auth] if token else CHECKS
    with running_server(database_url, tmp_path, **env) as (process, url), running_workers(database_url, tmp_path):
        seeded = seed(url, headers)
        log = FuzzLog()
        schema = load_schema(url, headers, seeded, log)
        labels = fuzz(schema, subtests, log, max_examples=max_examples, checks=checks, headers=headers)
        print("\n" + log.summary(f"schemathesis {schemathesis.__version__}, auth {'on' if token else 'off'}"))
        check_event_streams(url, headers, seeded)
        assert process.alive(), process.output()
    assert len(labels) == len(set(labels)) >= 13
    assert set(log.cases) == set(labels), "every operation was fuzzed"
    assert log.server_errors == 0
    return log


def test_api_conforms_to_its_schema(database_url: str, tmp_path: Path, subtests: pytest.Subtests) -> None:
    log = fuzz_server(database_url, tmp_path, subtests, token=None, max_examples=EXAMPLES)
    assert all(log.statuses[label][200] for label in log.statuses if label.startswith("GET ")), log.statuses
    assert log.statuses["POST /workflows"][201], "valid deploys were among the cases"


def test_api_with_a_token_conforms_to_its_schema(database_url: str, tmp_path: Path, subtests: pytest.Subtests) -> None:
    log = fuzz_server(database_url, tmp_path, subtests, token=TOKEN, max_examples=EXAMPLES_WITH_TOKEN)
    assert sum(counter[401] for counter in log.statuses.values()), "requests without the token were refused"
