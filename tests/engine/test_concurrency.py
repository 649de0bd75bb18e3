"""Concurrency keys and priorities on real PostgreSQL with an in-process worker: a key's slots are granted in start
order and given back by every way an instance finishes; cancel_newest and cancel_in_progress; a sleeping instance
keeps its slot; a retried instance takes one again; claims honour priorities."""

from __future__ import annotations

import asyncio

import pytest

from postgit import HitEndpoint, Sequence, Sleep, SubWorkflow, Workflow
from postgit.errors import DefinitionError, InvalidInput
from postgit.operations import InstanceOperations
from tests.support.engine import in_process_worker, wait_event, wait_finished
from tests.support.waiting import wait_for

ONCE = {"maxAttempts": 1}


def keyed(http_server, limit: int = 1, strategy: str = "queue", *, sleep: float | None = None) -> dict:
    """A workflow whose one step holds /block/<input.name> open, with a concurrency key per input.customer."""
    children = [Sleep(id="nap", seconds=sleep)] if sleep else []
    children.append(HitEndpoint(id="work", url=f"{http_server.url}/block/{{{{ input.name }}}}", retry=ONCE))
    root = Sequence(id="root", children=children)
    concurrency = {"key": "{{ input.customer }}", "limit": limit, "strategy": strategy}
    return Workflow(root, concurrency=concurrency).to_json()


async def arrived(http_server, name: str) -> None:
    await asyncio.to_thread(http_server.arrival(name).wait, 20)
    assert http_server.arrival(name).is_set(), f"/block/{name} was never called"


async def row(store, instance_id) -> dict:
    found = await store.get_instance(instance_id)
    assert found is not None
    return found


async def test_a_key_runs_at_most_limit_instances_the_rest_wait_in_start_order_naming_the_key(
    service, store, registry, database_url, http_server
):
    await service.deploy("keyed", keyed(http_server, limit=1))
    a, _ = await service.start("keyed", {"customer": "acme", "name": "a"})
    b, _ = await service.start("keyed", {"customer": "acme", "name": "b"})
    c, _ = await service.start("keyed", {"customer": "acme", "name": "c"})
    other, _ = await service.start("keyed", {"customer": "globex", "name": "other"})
    async with in_process_worker(store, registry, database_url):
        await arrived(http_server, "a")
        await arrived(http_server, "other")  # another key runs beside it
        shown = await service.get_instance(b["id"])
        assert shown["status"] == "pending"
        assert shown["wait_reason"] == "waiting for a concurrency slot of key acme (limit 1)"
        assert http_server.hits("/block/b") == [] and http_server.hits("/block/c") == []
        http_server.release("a")
        await wait_finished(store, a["id"])
        await arrived(http_server, "b")  # b started before c: b goes first
        assert http_server.hits("/block/c") == []
        assert (await row(store, c["id"]))["wait_reason"] == "waiting for a concurrency slot of key acme (limit 1)"
        http_server.release("b")
        await arrived(http_server, "c")
        http_server.release("c")
        http_server.release("other")
        for started in (a, b, c, other):
            assert (await wait_finished(store, started["id"]))["status"] == "completed"
    assert not any(r["holds_slot"] or r["awaiting_slot"] for r in [await row(store, x["id"]) for x in (a, b, c)])
    granted = await wait_event(store, b["id"], "concurrency_slot_granted")
    assert granted["data"] == {"key": "acme"}


async def test_a_limit_of_two_runs_two_at_once(service, store, registry, database_url, http_server):
    await service.deploy("keyed", keyed(http_server, limit=2))
    ids = [(await service.start("keyed", {"customer": "acme", "name": f"n{i}"}))[0]["id"] for i in range(3)]
    async with in_process_worker(store, registry, database_url):
        await arrived(http_server, "n0")
        await arrived(http_server, "n1")
        assert (await row(store, ids[2]))["awaiting_slot"]
        http_server.release("n1")
        await arrived(http_server, "n2")
        http_server.release("n0")
        http_server.release("n2")
        for instance_id in ids:
            assert (await wait_finished(store, instance_id))["status"] == "completed"


async def test_cancel_newest_cancels_a_start_that_finds_the_key_full(
    service, store, registry, database_url, http_server
):
    await service.deploy("keyed", keyed(http_server, limit=1, strategy="cancel_newest"))
    a, _ = await service.start("keyed", {"customer": "acme", "name": "a"})
    b, _ = await service.start("keyed", {"customer": "acme", "name": "b"})
    assert b["status"] == "cancelled"
    cancelled = await row(store, b["id"])
    assert "concurrency key acme" in cancelled["error"]["message"]
    event = await wait_event(store, b["id"], "instance_cancelled")
    assert "cancel_newest" in event["data"]["reason"]
    async with in_process_worker(store, registry, database_url):
        await arrived(http_server, "a")
        http_server.release("a")
        assert (await wait_finished(store, a["id"]))["status"] == "completed"
        c, _ = await service.start("keyed", {"customer": "acme", "name": "c"})  # the slot is free again
        assert c["status"] == "pending"
        await arrived(http_server, "c")
        http_server.release("c")
        assert (await wait_finished(store, c["id"]))["status"] == "completed"
        assert (await wait_finished(store, a["id"]))["status"] == "completed"
    assert http_server.hits("/block/b") == []


async def test_cancel_in_progress_cancels_the_oldest_holder_and_takes_its_slot(
    service, store, registry, database_url, http_server
):
    await service.deploy("keyed", keyed(http_server, limit=1, strategy="cancel_in_progress"))
    async with in_process_worker(store, registry, database_url):
        a, _ = await service.start("keyed", {"customer": "acme", "name": "a"})
        await arrived(http_server, "a")
        b, _ = await service.start("keyed", {"customer": "acme", "name": "b"})
        assert b["status"] == "pending"
        old = await wait_finished(store, a["id"])
        assert old["status"] == "cancelled"
        assert f"a newer instance ({b['id']})" in old["error"]["message"]
        await arrived(http_server, "b")
        http_server.release("a")
        http_server.release("b")
        assert (await wait_finished(store, b["id"]))["status"] == "completed"
    assert (await row(store, a["id"]))["status"] == "cancelled"  # its worker wrote nothing after the cancel


async def test_a_sleeping_instance_keeps_its_slot(service, store, registry, database_url, http_server):
    await service.deploy("sleepy", keyed(http_server, limit=1, sleep=1.0))
    a, _ = await service.start("sleepy", {"customer": "acme", "name": "a"})
    b, _ = await service.start("sleepy", {"customer": "acme", "name": "b"})
    async with in_process_worker(store, registry, database_url):
        await wait_event(store, a["id"], "step_suspended", "nap")
        assert (await row(store, a["id"]))["holds_slot"]
        assert (await row(store, b["id"]))["awaiting_slot"]
        await arrived(http_server, "a")
        assert http_server.hits("/block/b") == []
        http_server.release("a")
        http_server.release("b")
        await wait_finished(store, a["id"])
        assert (await wait_finished(store, b["id"]))["status"] == "completed"
    [first] = http_server.hits("/block/a")
    [second] = http_server.hits("/block/b")
    assert second.at >= first.at


async def test_cancelling_failing_and_retrying_give_back_and_take_slots(
    service, store, registry, database_url, http_server
):
    root = Sequence(
        id="root", children=[HitEndpoint(id="work", url=f"{http_server.url}/{{{{ input.path }}}}", retry=ONCE)]
    )
    await service.deploy("ops", Workflow(root, concurrency={"key": "k", "limit": 1}).to_json())
    failing, _ = await service.start("ops", {"path": "status/500"})
    held, _ = await service.start("ops", {"path": "block/held"})
    queued, _ = await service.start("ops", {"path": "block/queued"})
    operations = InstanceOperations(service)
    async with in_process_worker(store, registry, database_url):
        assert (await wait_finished(store, failing["id"]))["status"] == "failed"  # its slot goes to `held`
        await arrived(http_server, "held")
        await operations.retry(failing["id"])  # the retried instance queues behind `queued`
        retried = await service.get_instance(failing["id"])
        assert retried["status"] == "pending"
        assert retried["wait_reason"] == "waiting for a concurrency slot of key k (limit 1)"
        await service.cancel(held["id"])  # the cancel gives its slot to `queued`
        await arrived(http_server, "queued")
        assert (await row(store, failing["id"]))["awaiting_slot"]
        http_server.release("held")
        http_server.release("queued")
        assert (await wait_finished(store, queued["id"]))["status"] == "completed"
        assert (await wait_finished(store, failing["id"]))["status"] == "failed"  # ran again, failed again
    assert len(http_server.hits("/status/500")) == 2


async def test_cancelling_a_waiting_instance_leaves_the_queue_in_order(
    service, store, registry, database_url, http_server
):
    await service.deploy("keyed", keyed(http_server, limit=1))
    a, _ = await service.start("keyed", {"customer": "acme", "name": "a"})
    b, _ = await service.start("keyed", {"customer": "acme", "name": "b"})
    c, _ = await service.start("keyed", {"customer": "acme", "name": "c"})
    await service.cancel(b["id"])
    async with in_process_worker(store, registry, database_url):
        await arrived(http_server, "a")
        http_server.release("a")
        await arrived(http_server, "c")
        http_server.release("c")
        assert (await wait_finished(store, c["id"]))["status"] == "completed"
        assert (await wait_finished(store, a["id"]))["status"] == "completed"
    assert http_server.hits("/block/b") == []


async def test_a_key_that_does_not_render_for_an_input_refuses_that_start_and_writes_nothing(
    service, store, http_server
):
    await service.deploy("keyed", keyed(http_server))
    with pytest.raises(InvalidInput, match=r"^concurrency\.key: template failed to render: .*customer"):
        await service.start("keyed", {"name": "a"})
    async with store.pool.connection() as conn:
        found = await (await conn.execute("SELECT count(*) AS n FROM postgit.instances")).fetchone()
    assert found["n"] == 0


@pytest.mark.parametrize(
    ("concurrency", "field"),
    [
        ({"key": "{{ input.customer }}", "limit": -1}, "concurrency.limit"),
        ({"key": "{{ input.customer }}", "limit": 0}, "concurrency.limit"),
        ({"key": "{{ input.customer }}", "limit": 1.5}, "concurrency.limit"),
        ({"key": "{{ input.customer }}", "strategy": "drop"}, "concurrency.strategy"),
        ({"key": "{{ input.customer "}, "concurrency.key"),
        ({"key": ""}, "concurrency.key"),
        ({"key": "{{ state.x }}"}, "concurrency.key"),
        ({"key": "k", "burst": 1}, "concurrency.burst"),
        ("k", "concurrency"),
    ],
)
async def test_a_bad_concurrency_setting_is_refused_at_deploy_naming_the_field(
    service, store, http_server, concurrency, field
):
    root = Sequence(id="root", children=[HitEndpoint(id="work", url=f"{http_server.url}/ok/a")])
    with pytest.raises(DefinitionError) as raised:
        await service.deploy("bad", {"root": root.to_json(), "concurrency": concurrency})
    assert [issue.field for issue in raised.value.issues] == [field]
    assert await store.latest_version("bad") is None


async def test_claims_take_higher_priorities_first(service, store, registry, database_url, http_server):
    root = Sequence(id="root", children=[HitEndpoint(id="work", url=f"{http_server.url}/ok/{{{{ input.name }}}}")])
    await service.deploy("prio", root.to_json())
    for name, priority in [("low", 5), ("default", None), ("high", 1), ("higher-default", 3), ("two", 2)]:
        await service.start("prio", {"name": name}, priority=priority)
    with pytest.raises(InvalidInput, match=r"^priority: must be a whole number from 1"):
        await service.start("prio", {"name": "zero"}, priority=0)
    with pytest.raises(InvalidInput, match=r"^priority: "):
        await service.start("prio", {"name": "six"}, priority=6)
    async with in_process_worker(store, registry, database_url, concurrency=1):

        async def all_ran() -> bool:
            return len(http_server.requests) == 5

        await wait_for(all_ran, timeout=30, what="five steps")
    order = [request.path.rsplit("/", 1)[1] for request in http_server.requests]
    assert order == ["high", "two", "default", "higher-default", "low"]


async def test_keys_are_shared_by_every_version_of_a_workflow(service, store, registry, database_url, http_server):
    await service.deploy("keyed", keyed(http_server, limit=1))
    a, _ = await service.start("keyed", {"customer": "acme", "name": "a"})
    await service.deploy("keyed", keyed(http_server, limit=1, sleep=0.1))  # a new version
    b, _ = await service.start("keyed", {"customer": "acme", "name": "b"})
    assert (await row(store, b["id"]))["version"] == 2
    assert (await row(store, b["id"]))["awaiting_slot"]
    async with in_process_worker(store, registry, database_url):
        await arrived(http_server, "a")
        http_server.release("a")
        await arrived(http_server, "b")
        http_server.release("b")
        assert (await wait_finished(store, b["id"]))["status"] == "completed"
        assert (await wait_finished(store, a["id"]))["status"] == "completed"


async def test_a_paused_or_waiting_holder_keeps_its_slot_until_it_is_cancelled(service, store, registry, database_url):
    root = Sequence(id="root", children=[Sleep(id="nap", seconds=3600)])
    await service.deploy("naps", Workflow(root, concurrency={"key": "all"}).to_json())
    a, _ = await service.start("naps", {})
    b, _ = await service.start("naps", {})
    operations = InstanceOperations(service)
    async with in_process_worker(store, registry, database_url):
        await wait_event(store, a["id"], "step_suspended", "nap")
        await operations.pause(a["id"])
        assert (await row(store, a["id"]))["holds_slot"]
        assert (await row(store, b["id"]))["awaiting_slot"]
        await service.cancel(a["id"])
        await wait_event(store, b["id"], "step_suspended", "nap")
        assert (await row(store, b["id"]))["holds_slot"]
        await service.cancel(b["id"])


async def test_an_instance_whose_deadline_passed_while_it_waited_fails_when_it_gets_its_slot(
    service, store, registry, database_url, http_server
):
    step = HitEndpoint(id="work", url=f"{http_server.url}/block/{{{{ input.name }}}}", retry=ONCE)
    flow = Workflow(Sequence(id="root", children=[step]), timeout=1, concurrency={"key": "all"})
    await service.deploy("brief", flow.to_json())
    a, _ = await service.start("brief", {"name": "a"})
    b, _ = await service.start("brief", {"name": "b"})
    async with in_process_worker(store, registry, database_url):
        failed_a = await wait_finished(store, a["id"])
        failed_b = await wait_finished(store, b["id"])
    assert failed_a["error"]["type"] == failed_b["error"]["type"] == "InstanceTimeout"
    assert http_server.hits("/block/b") == []
    http_server.release("a")


async def test_a_rate_limit_spaces_a_nodes_steps_across_workers_without_polling(
    service, store, registry, database_url, http_server
):
    per_second = 4
    step = HitEndpoint(
        id="call",
        url=f"{http_server.url}/ok/{{{{ input.n }}}}",
        rate_limit={"key": "api-{{ input.api }}", "per_second": per_second},
    )
    await service.deploy("limited", Sequence(id="root", children=[step]).to_json())
    ids = [(await service.start("limited", {"n": n, "api": "x"}))[0]["id"] for n in range(10)]
    other = (await service.start("limited", {"n": "other", "api": "y"}))[0]["id"]
    async with (
        in_process_worker(store, registry, database_url),
        in_process_worker(store, registry, database_url),
    ):
        for instance_id in [*ids, other]:
            assert (await wait_finished(store, instance_id))["status"] == "completed"
    times = sorted(r.at for r in http_server.requests if r.path != "/ok/other")
    assert len(times) == 10
    # a second's worth at once, then one every 1/per_second seconds: any n calls span at least n/per_second - 1
    # seconds (less a little slack: a request reaches the server a moment after its token was due)
    for first in range(len(times)):
        for last in range(first + per_second, len(times)):
            assert times[last] - times[first] >= (last - first + 1) / per_second - 1 - 0.2, times
    for instance_id in ids:  # a step waits once, for the token it reserved: no retries, no polling
        kinds = [event["kind"] for event in await store.events_since(instance_id)]
        assert kinds.count("step_suspended") <= 1 and kinds.count("step_failed") == 0


@pytest.mark.parametrize(
    ("rate_limit", "field"),
    [
        ({"key": "k", "perSecond": 0}, "rateLimit.perSecond"),
        ({"key": "k", "perSecond": "5"}, "rateLimit.perSecond"),
        ({"key": "k"}, "rateLimit.perSecond"),
        ({"key": "{{ nope", "perSecond": 1}, "rateLimit.key"),
        ({"perSecond": 1}, "rateLimit.key"),
        ({"key": "k", "perSecond": 1, "burst": 2}, "rateLimit.burst"),
        (5, "rateLimit"),
    ],
)
async def test_a_bad_rate_limit_is_refused_at_deploy_naming_the_node_and_field(service, rate_limit, field):
    node = {"id": "call", "type": "HitEndpoint", "params": {"url": "http://127.0.0.1:9/x"}, "rateLimit": rate_limit}
    with pytest.raises(DefinitionError) as raised:
        await service.deploy("bad", node)
    assert [(issue.node_id, issue.field) for issue in raised.value.issues] == [("call", field)]


async def test_many_starts_of_many_keys_at_once_give_each_key_its_limit_and_queue_the_rest(service, store, http_server):
    await service.deploy("keyed", keyed(http_server, limit=1))
    customers = [f"c{n % 7}" for n in range(60)]

    async def start(index: int) -> dict:
        return (await service.start("keyed", {"customer": customers[index], "name": str(index)}))[0]

    started = await asyncio.gather(*(start(index) for index in range(len(customers))))
    async with store.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT concurrency_key AS key, count(*) FILTER (WHERE holds_slot) AS held,"
            " count(*) FILTER (WHERE awaiting_slot) AS waiting FROM postgit.instances GROUP BY 1 ORDER BY 1"
        )
        rows = await cursor.fetchall()
    assert [(row["key"], row["held"]) for row in rows] == [(f"c{n}", 1) for n in range(7)]
    assert sum(row["waiting"] for row in rows) == len(started) - 7


async def test_a_rate_limit_key_that_does_not_render_fails_the_step(service, store, registry, database_url):
    step = HitEndpoint(id="call", url="http://127.0.0.1:9/x", rate_limit={"key": "{{ input.api }}", "per_second": 1})
    await service.deploy("limited", Sequence(id="root", children=[step]).to_json())
    row_, _ = await service.start("limited", {})
    async with in_process_worker(store, registry, database_url):
        failed = await wait_finished(store, row_["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["message"].startswith("rateLimit.key: template failed to render")


async def test_a_child_cancelled_by_cancel_in_progress_wakes_its_waiting_parent(
    service, store, registry, database_url, http_server
):
    await service.deploy("child", keyed(http_server, limit=1, strategy="cancel_in_progress"))
    call = SubWorkflow(id="call", workflow="child", input={"customer": "acme", "name": "first"}, assign_to="$.out")
    await service.deploy("parent", Sequence(id="root", children=[call]).to_json())
    parent, _ = await service.start("parent", {})
    async with in_process_worker(store, registry, database_url):
        await arrived(http_server, "first")
        newer, _ = await service.start("child", {"customer": "acme", "name": "second"})
        failed = await wait_finished(store, parent["id"])
        assert failed["status"] == "failed"
        assert "was cancelled" in failed["error"]["message"]
        await arrived(http_server, "second")
        http_server.release("first")
        http_server.release("second")
        assert (await wait_finished(store, newer["id"]))["status"] == "completed"


async def test_cancel_in_progress_cancels_the_holders_children_too(service, store, registry, database_url, http_server):
    step = HitEndpoint(id="work", url=f"{http_server.url}/block/{{{{ input.name }}}}", retry=ONCE)
    await service.deploy("blocker", Sequence(id="root", children=[step]).to_json())
    call = SubWorkflow(id="call", workflow="blocker", input={"name": "{{ input.name }}"})
    holder = Workflow(
        Sequence(id="root", children=[call]), concurrency={"key": "all", "strategy": "cancel_in_progress"}
    )
    await service.deploy("holder", holder.to_json())
    first, _ = await service.start("holder", {"name": "h1"})
    async with in_process_worker(store, registry, database_url):
        await arrived(http_server, "h1")
        [child] = await store.list_children(first["id"])
        second, _ = await service.start("holder", {"name": "h2"})
        assert (await row(store, first["id"]))["status"] == "cancelled"
        assert (await row(store, child["id"]))["status"] == "cancelled"
        await arrived(http_server, "h2")
        http_server.release("h1")
        http_server.release("h2")
        assert (await wait_finished(store, second["id"]))["status"] == "completed"
