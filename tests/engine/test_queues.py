"""Queues with real worker processes: each step runs only on a worker that serves its queue."""

from __future__ import annotations

import subprocess

from postgit import ForEach, HitEndpoint, Node, Parallel, Sequence, Workflow
from tests.support.processes import script, start_worker, worker_env
from tests.support.waiting import wait_for


async def workers_by_pid(store) -> dict[int, dict]:
    return {row["pid"]: row for row in await store.list_live_workers(30)}


async def test_a_gpu_step_waits_for_a_gpu_worker_and_runs_only_there(
    service, store, database_url, http_server, tmp_path
):
    url = http_server.url
    flow = Sequence(
        id="root",
        children=[
            HitEndpoint(id="fetch", url=f"{url}/ok/fetch", method="POST"),
            HitEndpoint(id="train", url=f"{url}/ok/train", method="POST", queue="gpu"),
            HitEndpoint(id="report", url=f"{url}/ok/report", method="POST"),
        ],
    )
    await service.deploy("train", flow.to_json())
    # a workflow whose every step is in the gpu queue, first step included
    await service.deploy("all-gpu", Workflow(HitEndpoint(id="only", url=f"{url}/ok/only"), queue="gpu").to_json())

    cpu = start_worker(database_url, tmp_path, 0, POSTGIT_QUEUES="default")
    gpu = None
    try:
        await wait_for(lambda: workers_by_pid(store), what="the default worker to register")
        assert (await workers_by_pid(store))[cpu.pid]["queues"] == ["default"]
        (started, _), (all_gpu, _) = await service.start("train", {}), await service.start("all-gpu", {})
        instance_id, all_gpu_id = started["id"], all_gpu["id"]

        async def parked_for_gpu() -> dict | None:
            row = await service.get_instance(instance_id)
            return row if row["status"] == "pending" and row["wait_reason"] else None

        parked = await wait_for(parked_for_gpu, what="the instance to be handed back for a gpu worker")
        assert "needs a worker serving queue 'gpu'" in parked["wait_reason"]
        assert [step["node_id"] for step in parked["steps"]] == ["fetch"]
        untouched = await service.get_instance(all_gpu_id)
        assert untouched["status"] == "pending" and untouched["steps"] == []
        assert untouched["wait_reason"] == "no live worker serves queue 'gpu'"
        [branch] = untouched["branches"]
        assert (branch["node_id"], branch["status"]) == ("only", "blocked")
        assert branch["waiting_for"] == "no live worker serves queue 'gpu' with node type 'HitEndpoint'"

        gpu = start_worker(database_url, tmp_path, 1, POSTGIT_QUEUES="gpu")

        async def finished() -> bool:
            rows = [await store.get_instance(i) for i in (instance_id, all_gpu_id)]
            return all(row["status"] == "completed" for row in rows)

        await wait_for(finished, timeout=60, what="both instances to complete once a gpu worker runs")
        workers = await workers_by_pid(store)
        cpu_id, gpu_id = workers[cpu.pid]["id"], workers[gpu.pid]["id"]
        assert workers[gpu.pid]["queues"] == ["gpu"]
        ran_on = {step["node_id"]: step["worker_id"] for step in await store.list_steps(instance_id)}
        assert ran_on == {"fetch": cpu_id, "train": gpu_id, "report": cpu_id}
        assert [step["worker_id"] for step in await store.list_steps(all_gpu_id)] == [gpu_id]
        assert cpu.alive() and gpu.alive()
    finally:
        cpu.stop()
        if gpu is not None:
            gpu.stop()


async def test_nothing_runs_on_a_worker_that_does_not_serve_its_queue(
    service, store, database_url, http_server, tmp_path
):
    url = http_server.url
    body = Sequence(
        id="item",
        children=[
            HitEndpoint(id="prep", url=f"{url}/ok/prep", method="POST"),
            HitEndpoint(id="train", url=f"{url}/ok/train", method="POST", queue="gpu"),
            HitEndpoint(id="post", url=f"{url}/ok/post", method="POST", queue="default"),
        ],
    )
    flow = ForEach(id="loop", items="{{ input.lines }}", body=body, concurrency=4)
    await service.deploy("mixed", flow.to_json())
    cpu = start_worker(database_url, tmp_path, 0, POSTGIT_QUEUES="default")
    gpu = start_worker(database_url, tmp_path, 1, POSTGIT_QUEUES="gpu")
    try:

        async def both_registered() -> dict[int, dict] | None:
            workers = await workers_by_pid(store)
            return workers if {cpu.pid, gpu.pid} <= set(workers) else None

        workers = await wait_for(both_registered, what="both workers to register")
        ids = [(await service.start("mixed", {"lines": list(range(6))}))[0]["id"] for _ in range(3)]

        async def all_completed() -> bool:
            rows = [await store.get_instance(i) for i in ids]
            assert not [row for row in rows if row["status"] == "failed"], rows
            return all(row["status"] == "completed" for row in rows)

        await wait_for(all_completed, timeout=90, interval=0.2, what="every instance to complete")
        expected = {"prep": workers[cpu.pid]["id"], "train": workers[gpu.pid]["id"], "post": workers[cpu.pid]["id"]}
        for instance_id in ids:
            steps = await store.list_steps(instance_id)
            assert len(steps) == 18
            wrong = [(s["run_key"], s["worker_id"]) for s in steps if s["worker_id"] != expected[s["node_id"]]]
            assert not wrong, f"steps ran on a worker that does not serve their queue: {wrong}"
    finally:
        cpu.stop()
        gpu.stop()


def test_a_bad_postgit_queues_stops_the_worker_at_start_up(database_url):
    done = subprocess.run(
        [script("postgit-worker")],
        env=worker_env(database_url, POSTGIT_QUEUES="gpu,,cpu"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "postgit-worker: POSTGIT_QUEUES='gpu,,cpu' has an empty queue name: list names separated by commas"
    ]


async def test_a_worker_claims_only_an_instance_with_a_run_of_its_queues_and_node_types(service, store):
    flow = Parallel(
        id="both",
        branches={"cpu": Node("Noop", id="cpu"), "gpu": Node("Shout", id="gpu", queue="gpu", text="x")},
    )
    await service.deploy("both", flow.to_json())
    (started, _) = await service.start("both", {})
    instance = await store.get_instance(started["id"])
    assert instance["lanes"] == ["default:Noop", "gpu:Shout"]

    async def claim(node_types: list[str], queues: list[str] | None) -> list:
        return await store.claim_instances(
            worker_id="w", node_types=node_types, limit=10, lease_seconds=30, queues=queues
        )

    # it serves gpu and has Noop, but the gpu run needs Shout and the Noop run is in default: it could run nothing
    assert await claim(["Noop"], ["gpu"]) == []
    assert await claim(["Shout"], ["default"]) == []
    assert await store.next_run_at(["Noop"], ["gpu"]) is None
    assert await store.next_run_at(["Shout"], ["gpu"]) is not None
    assert [row["id"] for row in await claim(["Shout"], ["gpu"])] == [started["id"]]
