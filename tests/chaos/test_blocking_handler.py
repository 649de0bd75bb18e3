"""An async handler that blocks the event loop past the lease is found out and retried to its end, not forever.

Two ``postgit-worker`` processes with a 3-second lease load a plugin whose ``async def`` handler calls
``time.sleep(4.5)``. Without a watchdog, the blocked worker cannot renew the lease, the other worker takes the
instance, blocks the same way, and the step never ends. With it, each run is a failed attempt (``LoopBlocked``),
logged with the node type and node, and the instance fails after its three attempts.
"""

from __future__ import annotations

from postgit import Node, Sequence
from postgit.plugins import load_registry
from postgit.service import WorkflowService
from tests.support.engine import wait_finished
from tests.support.fault_plugin import load_plugin, plugin_path
from tests.support.processes import running_workers

BLOCK_SECONDS = 4.5
LEASE_SECONDS = 3


async def test_a_handler_blocking_the_loop_fails_its_attempts_instead_of_moving_between_workers(
    store, database_url, tmp_path
):
    service = WorkflowService(store, load_registry(extra=[load_plugin()]))
    flow = Sequence(id="root", children=[Node("BlocksTheLoop", id="nap", seconds=BLOCK_SECONDS)])
    await service.deploy("blocks", flow.to_json())
    calls = tmp_path / "calls.txt"
    calls.touch()
    env = {
        "PYTHONPATH": plugin_path(tmp_path),
        "BLOCKING_PLUGIN_CALLS": str(calls),
        "POSTGIT_LEASE_SECONDS": str(LEASE_SECONDS),
    }
    with running_workers(database_url, tmp_path, count=2, **env) as workers:
        row, _ = await service.start("blocks")
        instance = await wait_finished(store, row["id"], timeout=90)
        logs = "".join(worker.output() for worker in workers)

    assert instance["status"] == "failed", instance
    assert instance["error"]["type"] == "LoopBlocked"
    assert "blocked the worker's event loop for" in instance["error"]["message"]
    steps = await store.list_steps(row["id"])
    assert [(step["attempt"], step["status"]) for step in steps] == [(1, "failed"), (2, "failed"), (3, "failed")]
    assert all(step["error"]["type"] == "LoopBlocked" for step in steps)
    runs = calls.read_text().splitlines()
    assert len(runs) == 3, f"the step ran {len(runs)} times for 3 attempts:\n{runs}"
    assert [int(line.split()[1]) for line in runs] == [1, 2, 3]
    assert "the event loop was blocked for" in logs
    assert f"by node type BlocksTheLoop, node 'nap' (instance {row['id']}" in logs
