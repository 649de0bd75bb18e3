"""Operations on real PostgreSQL with an in-process worker: delayed starts, pause and resume, retry (also from
inside a Parallel branch and a ForEach item, and on a fixed new version), and bulk actions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from postgit import ForEach, HitEndpoint, If, Parallel, Sequence, SubWorkflow, WaitForEvent
from postgit.errors import Conflict, InvalidInput
from postgit.operations import InstanceOperations
from tests.support.engine import in_process_worker, wait_event, wait_finished
from tests.support.waiting import wait_for

ONCE = {"maxAttempts": 1}


def kinds(events: list[dict]) -> list[str]:
    return [event["kind"] for event in events]


async def status_of(store, instance_id) -> dict:
    row = await store.get_instance(instance_id)
    assert row is not None
    return row


async def test_a_delayed_start_is_pending_with_its_start_time_and_runs_no_step_before_it(
    service, store, registry, database_url, http_server
):
    await service.deploy(
        "later", Sequence(id="root", children=[HitEndpoint(id="a", url=f"{http_server.url}/ok/a")]).to_json()
    )
    start_at = datetime.now(UTC) + timedelta(seconds=2)
    row, _ = await service.start("later", {}, start_at=start_at)
    shown = await service.get_instance(row["id"])
    assert shown["status"] == "pending"
    assert shown["wait_reason"] == f"starts at {start_at.isoformat()}"
    async with in_process_worker(store, registry, database_url):
        await wait_finished(store, row["id"])
    [step] = await store.list_steps(row["id"])
    assert step["status"] == "completed"
    assert step["started_at"] >= start_at
    created = (await store.events_since(row["id"]))[0]
    assert created["kind"] == "instance_created" and "starts_at" in created["data"]


async def test_a_delayed_start_can_be_cancelled_before_it_starts(service, store, registry, database_url, http_server):
    await service.deploy(
        "later", Sequence(id="root", children=[HitEndpoint(id="a", url=f"{http_server.url}/ok/a")]).to_json()
    )
    row, _ = await service.start("later", {}, start_at=datetime.now(UTC) + timedelta(hours=1))
    async with in_process_worker(store, registry, database_url):
        await service.cancel(row["id"])
    assert (await status_of(store, row["id"]))["status"] == "cancelled"
    assert await store.list_steps(row["id"]) == []
    assert http_server.hits("/ok/a") == []


async def test_a_paused_instance_finishes_its_running_step_and_runs_no_more_until_resumed(
    service, store, registry, database_url, http_server
):
    flow = Sequence(
        id="root",
        children=[
            HitEndpoint(id="slow", url=f"{http_server.url}/block/slow"),
            HitEndpoint(id="after", url=f"{http_server.url}/ok/after"),
        ],
    )
    await service.deploy("pausable", flow.to_json())
    operations = InstanceOperations(service)
    row, _ = await service.start("pausable", {})
    async with in_process_worker(store, registry, database_url):
        await asyncio.to_thread(http_server.arrival("slow").wait, 20)
        paused = await operations.pause(row["id"], "deploying a fix")
        assert paused["status"] == "running"
        http_server.release("slow")

        async def handed_back() -> dict | None:
            current = await status_of(store, row["id"])
            return current if current["status"] == "pending" and current["lease_owner"] is None else None

        current = await wait_for(handed_back, timeout=20, what="the paused instance to be handed back")
        assert current["paused_at"] is not None and current["pause_reason"] == "deploying a fix"
        assert [(s["node_id"], s["status"]) for s in await store.list_steps(row["id"])] == [("slow", "completed")]
        shown = await service.get_instance(row["id"])
        assert "runs once the instance is resumed" in shown["wait_reason"]
        with pytest.raises(Conflict, match="already paused"):
            await operations.pause(row["id"])
        await operations.resume(row["id"])
        done = await wait_finished(store, row["id"])
    assert done["status"] == "completed"
    assert len(http_server.hits("/ok/after")) == 1
    events = kinds(await store.events_since(row["id"]))
    assert events.index("instance_paused") < events.index("instance_resumed")
    with pytest.raises(Conflict, match="only a pending, running or waiting instance can be paused"):
        await operations.pause(row["id"])
    with pytest.raises(Conflict, match="only a paused instance can be resumed"):
        await operations.resume(row["id"])


async def test_a_paused_instance_that_is_due_is_not_claimed(service, store, registry, database_url, http_server):
    await service.deploy(
        "idle", Sequence(id="root", children=[HitEndpoint(id="a", url=f"{http_server.url}/ok/a")]).to_json()
    )
    operations = InstanceOperations(service)
    row, _ = await service.start("idle", {})
    await operations.pause(row["id"])
    async with in_process_worker(store, registry, database_url) as worker:
        claimed = await store.claim_instances(
            worker_id="probe", node_types=worker.node_types, limit=10, lease_seconds=5
        )
        assert claimed == []
        await operations.resume(row["id"])
        assert (await wait_finished(store, row["id"]))["status"] == "completed"


async def test_retry_on_a_fixed_version_keeps_completed_steps_and_counts_attempts_from_one(
    service, store, registry, database_url, http_server
):
    def flow(url: str) -> Sequence:
        return Sequence(
            id="root",
            children=[
                HitEndpoint(id="a", url=f"{http_server.url}/ok/a", assign_to="$.a"),
                HitEndpoint(id="b", url=url, retry={"maxAttempts": 2, "initialInterval": 0.05}),
                HitEndpoint(id="c", url=f"{http_server.url}/ok/c"),
            ],
        )

    await service.deploy("fixme", flow(f"{http_server.url}/status/500").to_json())
    operations = InstanceOperations(service)
    row, _ = await service.start("fixme", {})
    async with in_process_worker(store, registry, database_url):
        failed = await wait_finished(store, row["id"])
        assert failed["status"] == "failed" and failed["error"]["node_id"] == "b"
        with pytest.raises(InvalidInput, match="from: node 'nope' does not exist in workflow 'fixme' version 1"):
            await operations.retry(row["id"], from_node="nope")
        await service.deploy("fixme", flow(f"{http_server.url}/ok/b").to_json())
        retried = await operations.retry(row["id"], latest=True)
        assert (retried["version"], retried["retry"], retried["steps_retired"]) == (2, 1, 2)
        done = await wait_finished(store, row["id"])
        with pytest.raises(Conflict, match="is completed: only a failed or cancelled instance can be retried"):
            await operations.retry(row["id"])
    assert done["status"] == "completed" and done["version"] == 2
    steps = [(s["node_id"], s["attempt"], s["status"]) for s in await store.list_steps(row["id"])]
    assert steps == [("a", 1, "completed"), ("b", 1, "completed"), ("c", 1, "completed")]
    assert len(http_server.hits("/ok/a")) == 1, "the completed step before the failure is not run again"
    retried_event = next(e for e in await store.events_since(row["id"]) if e["kind"] == "instance_retried")
    assert retried_event["data"]["version"] == 2 and retried_event["data"]["runs"] == ["b"]


async def test_retry_from_a_node_reruns_it_and_everything_after_it(service, store, registry, database_url, http_server):
    flow = Sequence(
        id="root",
        children=[
            HitEndpoint(id="a", url=f"{http_server.url}/ok/a"),
            HitEndpoint(id="b", url=f"{http_server.url}/ok/b"),
            HitEndpoint(id="c", url=f"{http_server.url}/block/c"),
        ],
    )
    await service.deploy("rerun", flow.to_json())
    operations = InstanceOperations(service)
    row, _ = await service.start("rerun", {})
    async with in_process_worker(store, registry, database_url):
        await asyncio.to_thread(http_server.arrival("c").wait, 20)
        with pytest.raises(Conflict, match="is running: only a failed or cancelled instance can be retried"):
            await operations.retry(row["id"])
        await service.cancel(row["id"])
        http_server.release("c")
        await operations.retry(row["id"], from_node="b")
        assert (await wait_finished(store, row["id"]))["status"] == "completed"
    assert len(http_server.hits("/ok/a")) == 1
    assert len(http_server.hits("/ok/b")) == 2


async def test_retry_inside_a_parallel_branch_reruns_only_the_failed_branch(
    service, store, registry, database_url, http_server
):
    flow = Sequence(
        id="root",
        children=[
            Parallel(
                id="fan",
                on_failure="wait_all",
                branches={
                    "x": HitEndpoint(id="x", url=f"{http_server.url}/ok/x"),
                    "y": HitEndpoint(id="y", url=f"{http_server.url}/flaky/y/1", retry=ONCE),
                },
                assign_to="$.fan",
            ),
            HitEndpoint(id="after", url=f"{http_server.url}/ok/after"),
        ],
    )
    await service.deploy("branches", flow.to_json())
    row, _ = await service.start("branches", {})
    async with in_process_worker(store, registry, database_url):
        assert (await wait_finished(store, row["id"]))["status"] == "failed"
        await InstanceOperations(service).retry(row["id"])
        done = await wait_finished(store, row["id"])
    assert done["status"] == "completed", done["error"]
    assert set(done["state"]["fan"]) == {"x", "y"}
    assert len(http_server.hits("/ok/x")) == 1
    assert len(http_server.hits("/flaky/y/1")) == 2


async def test_retry_inside_a_foreach_reruns_only_the_failed_item(service, store, registry, database_url, http_server):
    url = http_server.url + "/{{ 'flaky/item' ~ item ~ '/1' if item == 2 else 'ok/item' ~ item }}"
    flow = Sequence(
        id="root",
        children=[
            ForEach(
                id="loop",
                items=[1, 2, 3],
                body=HitEndpoint(id="each", url=url, retry=ONCE),
                assign_to="$.results",
            )
        ],
    )
    await service.deploy("items", flow.to_json())
    row, _ = await service.start("items", {})
    async with in_process_worker(store, registry, database_url):
        failed = await wait_finished(store, row["id"])
        assert failed["status"] == "failed"
        await InstanceOperations(service).retry(row["id"])
        done = await wait_finished(store, row["id"])
    assert done["status"] == "completed", done["error"]
    assert len(done["state"]["results"]) == 3
    assert len(http_server.hits("/ok/item1")) == 1
    assert len(http_server.hits("/flaky/item2/1")) == 2
    steps = {(s["run_key"], s["attempt"], s["status"]) for s in await store.list_steps(row["id"])}
    assert ("each[1]", 1, "completed") in steps


async def test_bulk_actions_count_first_then_act_and_log_an_event_on_each(service, store, http_server):
    await service.deploy(
        "many", Sequence(id="root", children=[HitEndpoint(id="a", url=f"{http_server.url}/ok/a")]).to_json()
    )
    operations = InstanceOperations(service)
    ids = [(await service.start("many", {"n": n}))[0]["id"] for n in range(3)]
    with pytest.raises(InvalidInput, match="status: retry takes instances that are cancelled or failed"):
        await operations.bulk("retry", workflow="many", status="pending")
    counted = await operations.bulk("pause", workflow="many", status="pending", dry_run=True)
    assert (counted.matched, counted.done) == (3, 0)
    assert [(await status_of(store, i))["paused_at"] for i in ids] == [None, None, None]
    paused = await operations.bulk("pause", workflow="many", status="pending")
    assert (paused.matched, paused.done, paused.skipped) == (3, 3, 0)
    cancelled = await operations.bulk("cancel", workflow="many", status="pending")
    assert cancelled.done == 3
    retried = await operations.bulk("retry", workflow="many", status="cancelled", since=datetime.now(UTC))
    assert retried.matched == 0, "since: only instances created from then on"
    retried = await operations.bulk("retry", workflow="many", status="cancelled")
    assert retried.done == 3
    for instance_id in ids:
        events = await store.events_since(instance_id)
        assert kinds(events)[-3:] == ["instance_paused", "instance_cancelled", "instance_retried"]
        assert all(event["data"].get("bulk") for event in events[-3:])
        assert (await status_of(store, instance_id))["status"] == "pending"


async def test_a_worker_lost_attempt_is_charged_by_the_next_claim(service, store, registry, database_url, http_server):
    """A claim of an instance whose lease expired charges the attempt its holder was running (in-process check of
    what the poison-step process test shows with real kills)."""
    flow = Sequence(
        id="root",
        children=[
            HitEndpoint(id="a", url=f"{http_server.url}/ok/a", retry={"maxAttempts": 2, "initialInterval": 0.05})
        ],
    )
    await service.deploy("lost", flow.to_json())
    row, _ = await service.start("lost", {})
    # a "worker" claims it and dies at once, before writing anything: the claim stands for the step it started
    [claim] = await store.claim_instances(worker_id="doomed", node_types=["HitEndpoint"], limit=1, lease_seconds=0.2)
    assert claim["id"] == row["id"]
    await wait_for(lambda: _lease_expired(store, row["id"]), timeout=20, what="the lease to expire")
    async with in_process_worker(store, registry, database_url):
        lost = await wait_event(store, row["id"], "worker_lost")
        done = await wait_finished(store, row["id"])
    assert lost["node_id"] == "a" and lost["data"]["worker"] == "doomed" and lost["data"]["attempt"] == 1
    assert done["status"] == "completed"
    steps = await store.list_steps(row["id"])
    assert [(s["attempt"], s["status"]) for s in steps] == [(1, "failed"), (2, "completed")]
    assert "the worker died while running node 'a'" in steps[0]["error"]["message"]


async def _lease_expired(store, instance_id) -> bool:
    row = await store.get_instance(instance_id)
    return row["lease_expires_at"] is not None and row["lease_expires_at"] < datetime.now(UTC)


async def test_a_bulk_action_works_through_its_chunks_and_says_why_it_skipped_each_instance(
    service, store, registry, database_url, http_server, monkeypatch
):
    monkeypatch.setattr("postgit.operations.BULK_CHUNK", 2)
    failing = Sequence(id="root", children=[HitEndpoint(id="a", url=f"{http_server.url}/status/500", retry=ONCE)])
    await service.deploy("chunked", failing.to_json())
    ids = [(await service.start("chunked", {"n": n}))[0]["id"] for n in range(5)]
    async with in_process_worker(store, registry, database_url):
        for instance_id in ids:
            await wait_finished(store, instance_id)
    # version 2 has no node "a": retried on the latest version, an instance that failed there cannot resume
    fixed = Sequence(id="root", children=[HitEndpoint(id="b", url=f"{http_server.url}/ok/b")])
    await service.deploy("chunked", fixed.to_json())
    operations = InstanceOperations(service)
    await operations.retry(ids[1], from_node="b", latest=True)
    refused = await operations.bulk("retry", workflow="chunked", status="failed", latest=True)
    assert (refused.matched, refused.done, refused.skipped) == (4, 0, 4)
    assert [error["id"] for error in refused.errors] == [str(i) for i in [ids[0], *ids[2:]]]
    assert all("latest: node 'a', where the instance failed, does not exist" in e["error"] for e in refused.errors)
    retried = await operations.bulk("retry", workflow="chunked", status="failed")
    assert (retried.matched, retried.done, retried.skipped) == (4, 4, 0)
    for instance_id in [ids[0], *ids[2:]]:
        [event] = [event for event in await store.events_since(instance_id) if event["kind"] == "instance_retried"]
        assert event["data"]["runs"] == ["a"] and event["data"]["steps_retired"] == 1 and event["data"]["bulk"]
        assert (await status_of(store, instance_id))["version"] == 1
    assert (await status_of(store, ids[1]))["version"] == 2
    cancelled = await operations.bulk("cancel", workflow="chunked", status="pending")
    assert (cancelled.matched, cancelled.done) == (5, 5)
    assert {(await status_of(store, instance_id))["status"] for instance_id in ids} == {"cancelled"}


async def test_one_bulk_cancel_of_a_parent_and_its_child_cancels_both_and_signals_no_one(
    service, store, registry, database_url
):
    nest = If(
        id="top",
        condition="input.depth == 0",
        then=SubWorkflow(id="call", workflow="nest", input={"depth": 1}),
        else_=WaitForEvent(id="forever", event="never"),
    )
    await service.deploy("nest", nest.to_json())
    parent, _ = await service.start("nest", {"depth": 0})
    async with in_process_worker(store, registry, database_url):

        async def child_waiting():
            children = await store.list_children(parent["id"])
            return children and children[0]["status"] == "waiting" and children[0]

        child = await wait_for(child_waiting, what="the child to wait")
        await wait_for(lambda: _status_is(store, parent["id"], "waiting"), what="the parent to wait")
        cancelled = await InstanceOperations(service).bulk("cancel", workflow="nest", status="waiting")
    assert (cancelled.matched, cancelled.done, cancelled.skipped) == (2, 2, 0)
    for instance_id in (parent["id"], child["id"]):
        assert (await status_of(store, instance_id))["status"] == "cancelled"
        assert kinds(await store.events_since(instance_id)).count("instance_cancelled") == 1
    async with store.pool.connection() as conn:
        signals = await (await conn.execute("SELECT count(*) FROM postgit.signals")).fetchone()
    assert signals["count"] == 0, "a parent cancelled with its child gets no signal from it"


async def _status_is(store, instance_id, status) -> bool:
    return (await status_of(store, instance_id))["status"] == status
