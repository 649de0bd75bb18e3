"""WaitForEvent and SubWorkflow on a real PostgreSQL with an in-process worker."""

from __future__ import annotations

import pytest

from postgit import Parallel, Sequence, SubWorkflow, Try, WaitForEvent, ref
from postgit.errors import Conflict, InvalidInput, NotFound
from postgit.plugins import load_registry
from postgit.service import WorkflowService
from tests.support.engine import in_process_worker, wait_event, wait_finished
from tests.support.probe import PROBE, Probe, ProbePlugin
from tests.support.waiting import wait_for


@pytest.fixture(scope="module")
def probe_registry():
    return load_registry(extra=[ProbePlugin])


@pytest.fixture
def postgit_plugins():
    return [ProbePlugin]


@pytest.fixture
def flows(store, probe_registry):
    PROBE.reset()
    return WorkflowService(store, probe_registry)


def approval(**wait):
    return Sequence(
        id="root",
        children=[
            WaitForEvent(id="approve", event="approval", assign_to="$.approval", **wait),
            Probe("after", value=ref("$.approval")),
        ],
    )


async def test_an_event_sent_to_a_waiting_instance_resumes_it(flows, store, probe_registry, database_url):
    await flows.deploy("approval", approval().to_json())
    row, _ = await flows.start("approval")
    async with in_process_worker(store, probe_registry, database_url):
        await wait_event(store, row["id"], "step_suspended", "approve")
        assert (await store.get_instance(row["id"]))["status"] == "waiting"
        sent = await flows.send_event(row["id"], "approval", {"by": "ada"}, event_id="e-1")
        again = await flows.send_event(row["id"], "approval", {"by": "mallory"}, event_id="e-1")
        instance = await wait_finished(store, row["id"])
    assert instance["status"] == "completed", instance["error"]
    assert instance["state"]["approval"] == {"timed_out": False, "data": {"by": "ada"}}
    assert not sent["duplicate"] and again == {"signal_id": sent["signal_id"], "duplicate": True}


async def test_an_event_sent_before_the_wait_begins_is_kept(flows, store, probe_registry, database_url):
    flow = Sequence(id="outer", children=[Probe("first"), approval()])
    await flows.deploy("early", flow.to_json())
    row, _ = await flows.start("early")
    await flows.send_event(row["id"], "approval", "yes")
    async with in_process_worker(store, probe_registry, database_url):
        instance = await wait_finished(store, row["id"])
    assert instance["state"]["approval"] == {"timed_out": False, "data": "yes"}


def test_a_wait_times_out_and_a_later_event_is_refused(postgit_env):
    instance = postgit_env.run(approval(timeout=86_400), name="approval")  # a day, skipped by the kit's clock
    assert instance.state["approval"] == {"timed_out": True, "data": None}
    assert instance.output("after") is not None
    with pytest.raises(Conflict, match="already completed"):
        postgit_env.send_event(instance.id, "approval", "too late")


async def test_one_event_per_wait_and_two_waits_take_two_events(flows, store, probe_registry, database_url):
    flow = Sequence(
        id="root",
        children=[
            WaitForEvent(id="one", event="tick", assign_to="$.one"),
            WaitForEvent(id="two", event="tick", assign_to="$.two"),
        ],
    )
    await flows.deploy("ticks", flow.to_json())
    row, _ = await flows.start("ticks")
    await flows.send_event(row["id"], "tick", 1)
    async with in_process_worker(store, probe_registry, database_url):
        await wait_event(store, row["id"], "step_suspended", "two")
        await flows.send_event(row["id"], "tick", 2)
        instance = await wait_finished(store, row["id"])
    assert (instance["state"]["one"]["data"], instance["state"]["two"]["data"]) == (1, 2)


async def test_a_keyed_event_reaches_every_instance_waiting_on_the_key(flows, store, probe_registry, database_url):
    flow = WaitForEvent(id="paid", event="payment", key="{{ input.order }}", assign_to="$.payment")
    await flows.deploy("orders", flow.to_json())
    first, _ = await flows.start("orders", {"order": "o-1"})
    second, _ = await flows.start("orders", {"order": "o-1"})
    other, _ = await flows.start("orders", {"order": "o-2"})
    async with in_process_worker(store, probe_registry, database_url):
        for row in (first, second, other):
            await wait_event(store, row["id"], "step_suspended", "paid")
        sent = await flows.send_keyed_event("payment", "o-1", {"amount": 5})
        assert sent["woken"] == 2
        done = [await wait_finished(store, row["id"]) for row in (first, second)]
        late, _ = await flows.start("orders", {"order": "o-1"})
        done.append(await wait_finished(store, late["id"]))
        assert (await store.get_instance(other["id"]))["status"] == "waiting"
    assert [instance["state"]["payment"]["data"] for instance in done] == [{"amount": 5}] * 3


async def test_an_event_reaches_a_branch_while_another_branch_runs(flows, store, probe_registry, database_url):
    flow = Parallel(
        id="p", branches={"busy": Probe("busy", sleep=1.5), "wait": WaitForEvent(id="w", event="go")}, assign_to="$.p"
    )
    await flows.deploy("mixed", flow.to_json())
    row, _ = await flows.start("mixed")
    async with in_process_worker(store, probe_registry, database_url):
        await wait_event(store, row["id"], "step_suspended", "w")
        await flows.send_event(row["id"], "go", "now")
        completed = await wait_event(store, row["id"], "step_completed", "w")
        assert "busy" not in PROBE.finished, "the event was handled while the other branch still ran"
        instance = await wait_finished(store, row["id"])
    assert completed and instance["state"]["p"]["wait"]["data"] == "now"


async def test_bad_events_are_refused(flows, store):
    await flows.deploy("approval", approval().to_json())
    row, _ = await flows.start("approval")
    with pytest.raises(InvalidInput, match="invalid event name"):
        await flows.send_event(row["id"], "no spaces", None)
    with pytest.raises(InvalidInput, match="reserved"):
        await flows.send_event(row["id"], "postgit.child", None)
    with pytest.raises(NotFound):
        await flows.send_event("01a23782-c714-7fd0-9fae-50e66f2ca905", "approval", None)


async def test_a_sub_workflow_runs_once_and_outputs_the_childs_state(flows, store, probe_registry, database_url):
    await flows.deploy("child", Probe("work", value="{{ input.n }}", assign_to="$.result").to_json())
    parent = Sequence(
        id="root",
        children=[
            SubWorkflow(id="call", workflow="child", input={"n": ref("$.input.n")}, assign_to="$.child"),
            Probe("after", value=ref("$.child.result.value")),
        ],
    )
    await flows.deploy("parent", parent.to_json())
    row, _ = await flows.start("parent", {"n": 7})
    async with in_process_worker(store, probe_registry, database_url):
        instance = await wait_finished(store, row["id"])
    assert instance["status"] == "completed", instance["error"]
    assert instance["state"]["child"]["result"]["value"] == "7"
    [child] = await store.list_children(row["id"])
    assert child["status"] == "completed" and child["parent_run_key"] == "call"
    assert PROBE.names() == ["work", "after"]


async def test_a_child_takes_its_parents_priority(flows, store, probe_registry, database_url):
    await flows.deploy("child", Probe("work", value="{{ input.n }}").to_json())
    parent = SubWorkflow(id="call", workflow="child", input={"n": ref("$.input.n")}, assign_to="$.child")
    await flows.deploy("parent", parent.to_json())
    urgent, _ = await flows.start("parent", {"n": 1}, priority=1)
    ordinary, _ = await flows.start("parent", {"n": 2})
    async with in_process_worker(store, probe_registry, database_url):
        for row in (urgent, ordinary):
            assert (await wait_finished(store, row["id"]))["status"] == "completed"
    async with store.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT parent_id, priority FROM postgit.instances WHERE parent_id = ANY(%s)",
            ([urgent["id"], ordinary["id"]],),
        )
        priorities = {row["parent_id"]: row["priority"] for row in await cursor.fetchall()}
    assert priorities == {urgent["id"]: 1, ordinary["id"]: 3}


async def test_a_failing_child_fails_the_node_and_can_be_caught(flows, store, probe_registry, database_url):
    await flows.deploy("child", Probe("boom", fail="fatal").to_json())
    parent = Try(
        id="guard", body=SubWorkflow(id="call", workflow="child"), catch=Probe("caught", value="{{ error.type }}")
    )
    await flows.deploy("parent", parent.to_json())
    row, _ = await flows.start("parent")
    async with in_process_worker(store, probe_registry, database_url):
        instance = await wait_finished(store, row["id"])
    assert instance["status"] == "completed", instance["error"]
    assert PROBE.calls[-1].name == "caught"
    steps = {step["run_key"]: step for step in await store.list_steps(row["id"])}
    assert steps["call"]["error"]["type"] == "ChildFailed"


async def test_cancelling_the_parent_cancels_children_unless_abandoned(flows, store, probe_registry, database_url):
    await flows.deploy("child", WaitForEvent(id="forever", event="never").to_json())
    parent = Parallel(
        id="p",
        branches={
            "kept": SubWorkflow(id="kept", workflow="child"),
            "left": SubWorkflow(id="left", workflow="child", on_parent_cancel="abandon"),
        },
    )
    await flows.deploy("parent", parent.to_json())
    row, _ = await flows.start("parent")
    async with in_process_worker(store, probe_registry, database_url):

        async def two_children_waiting():
            children = await store.list_children(row["id"])
            return len(children) == 2 and all(child["status"] == "waiting" for child in children) and children

        children = await wait_for(two_children_waiting, what="both children to wait")
        await flows.cancel(row["id"])
    statuses = {child["parent_run_key"]: (await store.get_instance(child["id"]))["status"] for child in children}
    assert statuses == {"kept": "cancelled", "left": "waiting"}
