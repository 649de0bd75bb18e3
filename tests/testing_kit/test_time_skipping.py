"""The kit's virtual clock: timers, timeouts and retry backoff fire as soon as nothing else can happen."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from pydantic import BaseModel

import postgit
from postgit import Node, RetryableError, Sequence, Sleep, SubWorkflow, WaitForEvent, Workflow
from postgit.testing import InstanceStuck, PostgitEnv, WaitTimeout

DAY = 86_400


class PollParams(BaseModel):
    every: float


async def poll(ctx: postgit.StepContext, params: PollParams) -> object:
    """Suspends twice, `every` seconds apart on the engine's clock, then completes with what it was handed."""
    seen = (ctx.resume or {}).get("polls", 0)
    if seen == 2:
        return {"polls": seen, "at": ctx.now().isoformat()}
    return postgit.Suspended(until=ctx.now() + timedelta(seconds=params.every), data={"polls": seen + 1})


class PollPlugin:
    @staticmethod
    @postgit.hookimpl
    def postgit_node_types() -> list[postgit.NodeType]:
        return [postgit.NodeType(name="Poll", params=PollParams, handler=poll, description="Poll on a timer")]


@pytest.fixture
def postgit_plugins() -> list[object]:
    return [PollPlugin()]


def test_a_workflow_that_sleeps_three_days_completes_on_the_virtual_clock(postgit_env: PostgitEnv):
    started = postgit_env.now()
    instance = postgit_env.run(Sequence(id="root", children=[Sleep(id="nap", seconds=3 * DAY)]))
    assert instance.status == "completed", instance.error
    slept_until = datetime.fromisoformat(instance.output("nap")["slept_until"])
    assert slept_until - started >= timedelta(days=3)
    assert postgit_env.now() >= slept_until
    assert instance.finished_at is not None and instance.finished_at >= slept_until  # the database's now() moved too


def test_a_handler_that_suspends_is_woken_with_its_data_at_each_due_time(postgit_env: PostgitEnv):
    started = postgit_env.now()
    instance = postgit_env.run(Node("Poll", id="poll", every=3600, assign_to="$.polled"))
    assert instance.status == "completed", instance.error
    assert instance.state["polled"]["polls"] == 2
    assert datetime.fromisoformat(instance.state["polled"]["at"]) - started >= timedelta(hours=2)
    assert [step.status for step in instance.attempts("poll")] == ["completed"]  # one attempt, resumed twice


def test_a_wait_for_an_event_times_out_on_the_virtual_clock(postgit_env: PostgitEnv):
    workflow = WaitForEvent(id="approval", event="approved", timeout=2 * DAY, assign_to="$.approval")
    instance = postgit_env.run(workflow)
    assert instance.status == "completed", instance.error
    assert instance.state["approval"] == {"timed_out": True, "data": None}


def test_an_event_sent_before_the_timeout_ends_the_wait(postgit_env: PostgitEnv):
    workflow = Sequence(
        id="root",
        children=[
            WaitForEvent(id="approval", event="approved", timeout=DAY, assign_to="$.approval"),
            Sleep(id="cool-off", seconds=3600),
        ],
    )
    instance_id = postgit_env.start(workflow, {"order": "A-1"})
    postgit_env.send_event(instance_id, "approved", {"by": "ada"})
    instance = postgit_env.wait(instance_id)
    assert instance.status == "completed", instance.error
    assert instance.state["approval"] == {"timed_out": False, "data": {"by": "ada"}}


def test_an_instance_past_its_timeout_fails_while_it_waits_for_an_event(postgit_env: PostgitEnv):
    workflow = Workflow(WaitForEvent(id="approval", event="approved"), timeout=7 * DAY)
    instance = postgit_env.run(workflow)
    assert instance.status == "failed"
    assert instance.error["type"] == "InstanceTimeout"


def test_retry_backoff_is_skipped(postgit_env: PostgitEnv):
    fetch = postgit_env.mock(
        "HitEndpoint",
        node="fetch",
        side_effect=[RetryableError("503 from the API"), RetryableError("503 again"), {"status": 200, "body": "ok"}],
    )
    workflow = Node(
        "HitEndpoint",
        id="fetch",
        url="http://api.example/x",
        retry={"maxAttempts": 3, "initialInterval": 3600, "backoffCoefficient": 2, "maxInterval": DAY},
    )
    instance = postgit_env.run(workflow)
    assert instance.status == "completed", instance.error
    assert [step.status for step in instance.attempts("fetch")] == ["failed", "failed", "completed"]
    assert fetch.call_count == 3
    first, _, third = instance.attempts("fetch")
    # an hour, then two, of backoff with equal jitter (at least half of each) were skipped
    assert third.started_at - first.started_at >= timedelta(minutes=90)


def test_waiting_for_an_event_that_nothing_sends_is_reported_not_waited_on(postgit_env: PostgitEnv):
    with pytest.raises(InstanceStuck, match="waits for event 'approved'"):
        postgit_env.run(WaitForEvent(id="approval", event="approved"))


def test_advance_lets_time_pass_and_fires_what_comes_due(postgit_env: PostgitEnv):
    instance_id = postgit_env.start(
        Sequence(id="root", children=[Sleep(id="short", seconds=60), Sleep(id="long", seconds=DAY)])
    )
    postgit_env.advance(3600)
    halfway = postgit_env.instance(instance_id)
    assert halfway.status == "waiting"
    assert halfway.step("short").status == "completed" and halfway.step("long").status == "suspended"
    postgit_env.advance(DAY)
    assert postgit_env.instance(instance_id).status == "completed"


def test_a_child_workflow_that_sleeps_is_skipped_through_too(postgit_env: PostgitEnv):
    postgit_env.deploy(Sleep(id="nap", seconds=2 * DAY, assign_to="$.nap"), "child")
    instance = postgit_env.run(SubWorkflow(id="child", workflow="child", assign_to="$.child"), name="parent")
    assert instance.status == "completed", instance.error
    assert "slept_until" in instance.state["child"]["nap"]
    assert len(instance.children) == 1


def test_a_keyed_event_reaches_the_instance_waiting_on_its_key(postgit_env: PostgitEnv):
    workflow = WaitForEvent(id="paid", event="payment", key="{{ input.order }}", timeout=DAY, assign_to="$.paid")
    instance_id = postgit_env.start(workflow, {"order": "A-7"})
    postgit_env.send_keyed_event("payment", "A-7", {"amount": 42})
    assert postgit_env.wait(instance_id).state["paid"] == {"timed_out": False, "data": {"amount": 42}}


def test_a_mock_that_suspends_is_woken_at_its_time(postgit_env: PostgitEnv):
    later = postgit_env.now() + timedelta(days=2)
    postgit_env.mock("Shout", side_effect=[postgit.Suspended(until=later, data={"n": 1}), {"text": "done"}])
    instance = postgit_env.run(Node("Shout", id="shout", text="x", assign_to="$.out"))
    assert instance.state["out"] == {"text": "done"}
    assert postgit_env.now() >= later


def test_an_instance_that_does_not_finish_in_real_time_is_a_wait_timeout(postgit_env: PostgitEnv):
    async def slow(ctx, params):
        await asyncio.sleep(30)

    postgit_env.mock("Shout", side_effect=slow)
    with pytest.raises(WaitTimeout, match=r"did not finish within 0\.3s \(real time\)"):
        postgit_env.run(Node("Shout", id="shout", text="x"), timeout=0.3)
