"""A handler's ``Suspended(until=...)`` that cannot be meant fails its step clearly, instead of being guessed at."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

import postgit
from postgit import Node, Sequence
from postgit.plugins import load_registry
from postgit.service import WorkflowService
from tests.support.engine import in_process_worker, wait_finished

LEASE_SECONDS = 5.0


class WakeParams(BaseModel):
    when: str


def wake(ctx: postgit.StepContext, params: WakeParams) -> Any:
    if ctx.suspended_until is not None:
        return {"woken": ctx.suspended_until.isoformat()}
    now = datetime.now(UTC)
    until = {
        "naive": datetime.now() + timedelta(seconds=1),  # the mistake under test
        "long-past": now - timedelta(seconds=3 * LEASE_SECONDS),
        "just-past": now - timedelta(seconds=1),
        "soon": now + timedelta(milliseconds=200),
        "not-a-datetime": "tomorrow",
    }[params.when]
    return postgit.Suspended(until=until)  # type: ignore[arg-type]


class WakePlugin:
    @staticmethod
    @postgit.hookimpl
    def postgit_node_types():
        return [postgit.NodeType(name="Wake", params=WakeParams, handler=wake, description="suspends")]


@pytest.fixture(scope="module")
def wake_registry():
    return load_registry(extra=[WakePlugin])


async def run_wake(store, registry, database_url, when: str) -> dict[str, Any]:
    service = WorkflowService(store, registry)
    await service.deploy("wake", Sequence(id="root", children=[Node("Wake", id="w", when=when)]).to_json())
    row, _ = await service.start("wake")
    async with in_process_worker(store, registry, database_url, lease_seconds=LEASE_SECONDS):
        return await wait_finished(store, row["id"])


@pytest.mark.parametrize(
    ("when", "message"),
    [
        ("naive", "a naive datetime: give it a time zone, e.g. datetime.now(UTC) + timedelta(seconds=10)"),
        ("long-past", "in the past (more than a lease, 5s): it would be woken again at once"),
        ("not-a-datetime", "until must be a datetime with a time zone"),
    ],
)
async def test_a_suspension_that_cannot_be_meant_fails_the_step_at_once(
    store, wake_registry, database_url, when, message
):
    instance = await run_wake(store, wake_registry, database_url, when)
    assert instance["status"] == "failed"
    error = instance["error"]
    assert error["type"] == "FatalError" and error["node_id"] == "w" and error["attempt"] == 1
    assert error["message"].startswith("the handler of Wake returned Suspended(until=")
    assert message in error["message"]
    steps = await store.list_steps(instance["id"])
    assert [step["status"] for step in steps] == ["failed"], "it must not be suspended, retried or re-run"


@pytest.mark.parametrize("when", ["soon", "just-past"])
async def test_an_aware_time_in_the_future_or_just_past_suspends_and_wakes(store, wake_registry, database_url, when):
    instance = await run_wake(store, wake_registry, database_url, when)
    assert instance["status"] == "completed", instance["error"]
