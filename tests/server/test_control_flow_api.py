"""The API for control flow: sending events, and an instance's branches, tree of runs and children."""

from __future__ import annotations

from tests.server.conftest import deploy, sequence, shout, start
from tests.support.processes import running_workers
from tests.support.waiting import wait_for

WAIT = {"id": "approve", "type": "WaitForEvent", "params": {"event": "approval"}, "assignTo": "$.approval"}


def parallel(node_id: str, **branches):
    return {"id": node_id, "type": "Parallel", "branches": branches}


async def shown(client, instance_id):
    return (await client.get(f"/instances/{instance_id}")).json()


async def test_send_an_event_to_an_instance(client, database_url, tmp_path):
    await deploy(client, "approval", sequence(WAIT, shout("after", "{{ approval.data.by }}")))
    started = await start(client, "approval")
    url = f"/instances/{started['id']}/events"
    sent = await client.post(url, json={"name": "approval", "data": {"by": "ada"}, "event_id": "e-1"})
    assert sent.status_code == 202, sent.text
    again = await client.post(url, json={"name": "approval", "data": {"by": "eve"}, "event_id": "e-1"})
    assert again.status_code == 202 and again.json() == {**sent.json(), "duplicate": True}
    with running_workers(database_url, tmp_path):

        async def completed():
            instance = await shown(client, started["id"])
            return instance if instance["status"] == "completed" else None

        instance = await wait_for(completed, timeout=30, what="the instance to complete")
    assert instance["state"]["approval"] == {"timed_out": False, "data": {"by": "ada"}}
    late = await client.post(url, json={"name": "approval"})
    assert late.status_code == 409 and "completed" in late.json()["detail"]


async def test_bad_events_are_refused(client):
    await deploy(client, "approval", sequence(WAIT))
    started = await start(client, "approval")
    url = f"/instances/{started['id']}/events"
    for body in ({"name": "has space"}, {"name": ""}, {}, {"name": "x", "extra": 1}, {"name": "x", "event_id": ""}):
        response = await client.post(url, json=body)
        assert response.status_code in (400, 422), (body, response.text)
    reserved = await client.post(url, json={"name": "postgit.child"})
    assert reserved.status_code == 400 and "reserved" in reserved.json()["detail"]
    missing = await client.post("/instances/01a23782-c714-7fd0-9fae-50e66f2ca905/events", json={"name": "x"})
    assert missing.status_code == 404
    assert (await client.post("/instances/not-an-id/events", json={"name": "x"})).status_code == 404
    no_key = await client.post("/events", json={"name": "approval"})
    assert no_key.status_code == 422


async def test_a_keyed_event_wakes_the_instances_waiting_on_it(client, database_url, tmp_path):
    waits = {"id": "paid", "type": "WaitForEvent", "params": {"event": "paid", "key": "{{ input.order }}"}}
    await deploy(client, "orders", waits)
    first = await start(client, "orders", input={"order": "o-1"})
    other = await start(client, "orders", input={"order": "o-2"})
    with running_workers(database_url, tmp_path):

        async def both_waiting():
            rows = [await shown(client, row["id"]) for row in (first, other)]
            return all(row["status"] == "waiting" for row in rows) and rows

        waiting, _ = await wait_for(both_waiting, timeout=30, what="both to wait")
        [branch] = waiting["branches"]
        assert (branch["node_id"], branch["status"], branch["event"], branch["event_key"]) == (
            "paid",
            "waiting",
            "paid",
            "o-1",
        )
        assert "waits for event 'paid' with key 'o-1'" in waiting["wait_reason"]
        sent = await client.post("/events", json={"name": "paid", "key": "o-1", "data": 5})
        assert sent.status_code == 202 and sent.json()["woken"] == 1

        async def first_done():
            instance = await shown(client, first["id"])
            return instance["status"] == "completed" and instance

        await wait_for(first_done, timeout=30, what="the keyed instance to complete")
    assert (await shown(client, other["id"]))["status"] == "waiting"


async def test_an_instance_shows_its_branches_tree_and_loop_progress(client, database_url, tmp_path):
    loop = {
        "id": "each",
        "type": "ForEach",
        "items": "{{ input.xs }}",
        "concurrency": 2,
        "body": {"id": "nap", "type": "Sleep", "params": {"seconds": 30}},
    }
    definition = parallel("p", loop=loop, wait=WAIT)
    await deploy(client, "tree", definition)
    started = await start(client, "tree", input={"xs": [1, 2, 3, 4, 5]})
    with running_workers(database_url, tmp_path):

        async def parked():
            instance = await shown(client, started["id"])
            return instance["status"] == "waiting" and len(instance["branches"]) == 3 and instance

        instance = await wait_for(parked, timeout=30, what="the instance to park on its timers and event")
    keys = sorted(branch["run_key"] for branch in instance["branches"])
    assert keys == ["approve", "nap[0]", "nap[1]"]
    assert all(branch["status"] == "waiting" for branch in instance["branches"])
    tree = instance["tree"]
    assert (tree["node_id"], tree["type"], tree["status"]) == ("p", "Parallel", "running")
    loop_node, wait_node = tree["children"]
    assert (loop_node["role"], loop_node["node_id"]) == ("loop", "each")
    assert loop_node["items"] == {
        "total": 5,
        "completed": 0,
        "failed": 0,
        "running": 2,
        "pending": 3,
        "running_items": [0, 1],
    }
    assert loop_node["children"][0]["node_id"] == "nap"
    assert (wait_node["node_id"], wait_node["status"]) == ("approve", "waiting")
    cancelled = await client.post(f"/instances/{started['id']}/cancel")
    assert cancelled.status_code == 200
    finished = await shown(client, started["id"])
    assert finished["branches"] == [] and finished["tree"]["status"] == "cancelled"


async def test_parent_and_children_are_linked(client, database_url, tmp_path):
    await deploy(client, "child", shout("inner"))
    await deploy(client, "parent", {"id": "call", "type": "SubWorkflow", "params": {"workflow": "child"}})
    started = await start(client, "parent")
    with running_workers(database_url, tmp_path):

        async def completed():
            instance = await shown(client, started["id"])
            return instance["status"] == "completed" and instance

        parent = await wait_for(completed, timeout=30, what="the parent to complete")
    [child] = parent["children"]
    assert (child["workflow"], child["status"], child["parent_run_key"]) == ("child", "completed", "call")
    shown_child = await shown(client, child["id"])
    assert (shown_child["parent_id"], shown_child["parent_run_key"]) == (started["id"], "call")
    listed = (await client.get("/instances", params={"workflow": "child"})).json()["items"]
    assert listed[0]["parent_id"] == started["id"]


async def test_a_sub_workflow_of_an_unknown_workflow_is_refused_at_deploy(client):
    response = await client.post(
        "/workflows",
        json={"name": "parent", "definition": {"id": "call", "type": "SubWorkflow", "params": {"workflow": "nope"}}},
    )
    assert response.status_code == 422
    issue = response.json()["issues"][0]
    assert (issue["node_id"], issue["field"]) == ("call", "params.workflow")
    assert "nope" in issue["message"]
