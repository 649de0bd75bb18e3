"""Control flow on a real PostgreSQL with an in-process worker: Parallel, If, Switch, ForEach, Try, timeouts."""

from __future__ import annotations

import asyncio

import pytest

from postgit import ForEach, If, Parallel, Sequence, Switch, Try, Workflow, ref
from postgit.errors import InvalidInput
from postgit.plugins import load_registry
from postgit.registry import NodeRegistry
from postgit.service import WorkflowService
from tests.support.engine import in_process_worker, wait_finished
from tests.support.probe import PROBE, Probe, ProbePlugin


@pytest.fixture(scope="module")
def probe_registry():
    return load_registry(extra=[ProbePlugin])


@pytest.fixture
def flows(store, probe_registry):
    PROBE.reset()
    return WorkflowService(store, probe_registry)


async def run(flows, store, registry, database_url, node, input=None, **worker):
    await flows.deploy("flow", node.to_json())
    row, _ = await flows.start("flow", input)
    async with in_process_worker(store, registry, database_url, **worker):
        return await wait_finished(store, row["id"])


async def test_parallel_runs_branches_at_once_and_outputs_by_name(flows, store, probe_registry, database_url):
    node = Sequence(
        id="root",
        children=[
            Parallel(
                id="both",
                branches={"a": Probe("pa", sleep=0.2), "b": Sequence(id="seq", children=[Probe("pb1"), Probe("pb2")])},
                assign_to="$.both",
            ),
            Probe("after", value=ref("$.both.a.name")),
        ],
    )
    instance = await run(flows, store, probe_registry, database_url, node)
    assert instance["status"] == "completed", instance["error"]
    assert instance["state"]["both"]["a"]["name"] == "pa" and instance["state"]["both"]["b"]["name"] == "pb2"
    assert PROBE.max_in_flight == 2
    assert PROBE.names()[-1] == "after"
    assert {s["run_key"] for s in await store.list_steps(instance["id"])} == {"pa", "pb1", "pb2", "after"}


async def test_parallel_fail_fast_cancels_the_running_sibling(flows, store, probe_registry, database_url):
    node = Parallel(id="p", branches={"bad": Probe("bad", fail="fatal"), "slow": Probe("slow", sleep=30)})
    instance = await run(flows, store, probe_registry, database_url, node)
    assert instance["status"] == "failed"
    assert instance["error"]["node_id"] == "bad" and instance["error"]["branch"] == "bad"
    assert "slow" not in PROBE.finished
    steps = await store.list_steps(instance["id"])
    assert [s["run_key"] for s in steps] == ["bad"], "the cancelled sibling wrote nothing"
    kinds = [(e["kind"], e["node_id"]) for e in await store.events_since(instance["id"])]
    assert ("step_cancelled", "slow") in kinds


async def test_parallel_wait_all_and_first(flows, store, probe_registry, database_url):
    node = Parallel(
        id="p", on_failure="wait_all", branches={"bad": Probe("bad", fail="fatal"), "ok": Probe("ok", sleep=0.2)}
    )
    instance = await run(flows, store, probe_registry, database_url, node)
    assert instance["status"] == "failed" and "ok" in PROBE.finished
    PROBE.reset()
    node = Parallel(
        id="p", mode="first", branches={"slow": Probe("slow", sleep=30), "quick": Probe("quick")}, assign_to="$.won"
    )
    await flows.deploy("first", node.to_json())
    row, _ = await flows.start("first")
    async with in_process_worker(store, probe_registry, database_url):
        instance = await wait_finished(store, row["id"])
    assert instance["status"] == "completed"
    assert list(instance["state"]["won"]) == ["quick"]
    assert "slow" not in PROBE.finished


async def test_if_and_switch_record_their_choice(flows, store, probe_registry, database_url):
    node = Sequence(
        id="root",
        children=[
            If(id="big", condition="input.amount > 100", then=Probe("review"), else_=Probe("auto")),
            Switch(id="tier", cases=[("input.amount > 1000", Probe("gold")), ("input.amount > 100", Probe("silver"))]),
        ],
    )
    instance = await run(flows, store, probe_registry, database_url, node, {"amount": 500})
    assert instance["status"] == "completed", instance["error"]
    assert PROBE.names() == ["review", "silver"]
    decisions = {run["run_key"]: run["decision"] for run in await store.list_runs(instance["id"])}
    assert decisions == {"big": {"branch": "then"}, "tier": {"case": 1}}


async def test_a_switch_with_no_match_and_no_default_fails_clearly(flows, store, probe_registry, database_url):
    node = Switch(id="tier", cases=[("input.amount > 1000", Probe("gold"))])
    instance = await run(flows, store, probe_registry, database_url, node, {"amount": 5})
    assert instance["status"] == "failed"
    assert instance["error"]["type"] == "NoChoiceMatched" and instance["error"]["node_id"] == "tier"


async def test_foreach_caps_concurrency_keeps_order_and_keys_each_item(flows, store, probe_registry, database_url):
    body = Probe("ship", value="{{ item }}", sleep=0.02)
    node = ForEach(id="each", items=ref("$.input.skus"), body=body, concurrency=4, assign_to="$.shipped")
    skus = [f"sku-{i}" for i in range(30)]
    instance = await run(flows, store, probe_registry, database_url, node, {"skus": skus})
    assert instance["status"] == "completed", instance["error"]
    assert [out["value"] for out in instance["state"]["shipped"]] == skus
    assert PROBE.max_in_flight == 4
    keys = sorted(call.key for call in PROBE.calls)
    assert keys == sorted(f"{instance['id']}:ship[{i}]" for i in range(30))


async def test_foreach_edge_cases(flows, store, probe_registry, database_url):
    empty = ForEach(id="each", items=[], body=Probe("never"), assign_to="$.out")
    instance = await run(flows, store, probe_registry, database_url, empty)
    assert (instance["status"], instance["state"]["out"]) == ("completed", [])
    PROBE.reset()
    all_fail = ForEach(id="each", items=[1, 2, 3], body=Probe("bad", fail="fatal"), concurrency=1)
    await flows.deploy("all-fail", all_fail.to_json())
    row, _ = await flows.start("all-fail")
    async with in_process_worker(store, probe_registry, database_url):
        instance = await wait_finished(store, row["id"])
    assert instance["status"] == "failed" and instance["error"]["type"] == "ItemsFailed"
    assert len(PROBE.calls) == 1, "the loop stops at the first failure it cannot tolerate"
    PROBE.reset()
    tolerant = ForEach(
        id="each",
        items=[1, 2, 3],
        body=Probe("maybe", fail="{{ 'fatal' if item == 2 else '' }}"),
        tolerated_failures="50%",
        assign_to="$.out",
    )
    await flows.deploy("tolerant", tolerant.to_json())
    row, _ = await flows.start("tolerant")
    async with in_process_worker(store, probe_registry, database_url):
        instance = await wait_finished(store, row["id"])
    assert instance["status"] == "completed", instance["error"]
    out = instance["state"]["out"]
    assert out["results"][1] is None and out["results"][0]["name"] == "maybe"
    assert [error["index"] for error in out["errors"]] == [1]


async def test_nested_foreach_inside_parallel_inside_try(flows, store, probe_registry, database_url):
    loop = ForEach(
        id="orders",
        items="{{ input.orders }}",
        body=ForEach(id="lines", items="{{ item.lines }}", body=Probe("line", value="{{ item }}")),
    )
    node = Try(
        id="guard",
        body=Parallel(id="p", branches={"loop": loop, "side": Probe("side")}, assign_to="$.result"),
        catch=Probe("recover", value="{{ error.message }}"),
        finally_=Probe("cleanup"),
    )
    orders = [{"lines": ["a", "b"]}, {"lines": ["c"]}]
    instance = await run(flows, store, probe_registry, database_url, node, {"orders": orders})
    assert instance["status"] == "completed", instance["error"]
    lines = instance["state"]["result"]["loop"]
    assert [[line["value"] for line in order] for order in lines] == [["a", "b"], ["c"]]
    assert sorted(call.run_key for call in PROBE.calls if call.name == "line") == [
        "line[0][0]",
        "line[0][1]",
        "line[1][0]",
    ]
    assert "recover" not in PROBE.names() and PROBE.names()[-1] == "cleanup"


async def test_try_runs_catch_with_the_error_and_finally(flows, store, probe_registry, database_url):
    node = Try(
        id="pay",
        body=Probe("charge", fail="fatal"),
        catch=Probe("refund", value="{{ error.node_id }}: {{ error.message }}", assign_to="$.refund"),
        finally_=Probe("receipt"),
    )
    instance = await run(flows, store, probe_registry, database_url, node)
    assert instance["status"] == "completed", instance["error"]
    assert instance["state"]["refund"]["value"] == "charge: charge failed"
    assert PROBE.names() == ["charge", "refund", "receipt"]


async def test_an_instance_past_its_timeout_fails_and_its_step_is_stopped(flows, store, probe_registry, database_url):
    flow = Workflow(Sequence(id="root", children=[Probe("slow", sleep=30)]), timeout=0.5)
    await flows.deploy("slow", flow.to_json())
    row, _ = await flows.start("slow")
    async with in_process_worker(store, probe_registry, database_url):
        instance = await wait_finished(store, row["id"], timeout=15)
    assert instance["status"] == "failed" and instance["error"]["type"] == "InstanceTimeout"
    assert "slow" not in PROBE.finished


async def test_the_input_schema_is_checked_at_start(flows, store):
    schema = {"type": "object", "required": ["order_id"], "properties": {"order_id": {"type": "string"}}}
    await flows.deploy("typed", Workflow(Probe("x"), input_schema=schema).to_json())
    with pytest.raises(InvalidInput, match="order_id"):
        await flows.start("typed", {"nope": 1})
    with pytest.raises(InvalidInput, match=r"input\.order_id: 5 is not of type 'string'"):
        await flows.start("typed", {"order_id": 5})
    _, created = await flows.start("typed", {"order_id": "o-1"})
    assert created


async def test_a_missing_node_type_holds_back_only_its_own_branch(store, probe_registry, database_url):
    with_shout = load_registry(extra=[ProbePlugin])
    flows = WorkflowService(store, with_shout)
    PROBE.reset()
    node = Parallel(
        id="p",
        branches={
            "mine": Probe("mine"),
            "theirs": Sequence(id="s", children=[postgit_node("Shout", "shout"), Probe("after-shout")]),
        },
    )
    await flows.deploy("split", node.to_json())
    row, _ = await flows.start("split")
    only_probe = NodeRegistry([with_shout["Probe"]])
    async with in_process_worker(store, only_probe, database_url):
        for _ in range(200):
            instance = await store.get_instance(row["id"])
            if "mine" in PROBE.finished and instance["status"] == "pending":
                break
            await asyncio.sleep(0.05)
    assert PROBE.finished == ["mine"]
    assert instance["status"] == "pending" and instance["node_types"] == ["Shout"]
    assert "shout" in instance["wait_reason"]
    async with in_process_worker(store, with_shout, database_url):
        instance = await wait_finished(store, row["id"])
    assert instance["status"] == "completed" and PROBE.finished == ["mine", "after-shout"]


def postgit_node(node_type, node_id):
    from postgit import Node

    return Node(node_type, id=node_id, text="hi")
