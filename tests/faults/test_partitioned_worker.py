"""A worker cut off from PostgreSQL stops its steps before its leases run out, and serves again once it heals.

Worker A reaches the database through a TCP proxy; its step has a side effect every 0.1 s. The proxy then
black-holes A's connections (bytes accepted, nothing forwarded, nothing answered), as a network partition does.
A cannot renew its lease: by its own clock it stops the step before the lease (5 s) runs out, so no side effect of
A's comes later than one lease after the cut, while worker B, which reaches the database directly, takes the
instance over once the lease has expired there. When the proxy forwards again, A serves new work without a restart.
"""

from __future__ import annotations

import time
from pathlib import Path

from postgit import Node, Sequence
from postgit.plugins import load_registry
from postgit.service import WorkflowService
from tests.support.engine import wait_finished
from tests.support.fault_plugin import load_plugin, plugin_path
from tests.support.processes import start_worker
from tests.support.tcp_proxy import tcp_proxy
from tests.support.waiting import wait_for_sync

LEASE_SECONDS = 5
STEP_SECONDS = 12


def ticks(path: Path) -> list[tuple[str, int, float]]:
    """(instance id, process id, time) of every side effect so far."""
    lines = path.read_text().splitlines() if path.exists() else []
    return [(instance, int(pid), float(at)) for instance, pid, at in (line.split() for line in lines)]


async def test_a_partitioned_worker_stops_its_steps_within_its_lease_and_serves_again_once_healed(
    store, database_url, tmp_path
):
    service = WorkflowService(store, load_registry(extra=[load_plugin()]))
    for name, seconds in (("ticks", STEP_SECONDS), ("short", 0.5)):
        await service.deploy(name, Sequence(id="root", children=[Node("Ticks", id="tick", seconds=seconds)]).to_json())
    ticks_file = tmp_path / "ticks.txt"
    env = {
        "PYTHONPATH": plugin_path(tmp_path),
        "TICKS_FILE": str(ticks_file),
        "POSTGIT_LEASE_SECONDS": str(LEASE_SECONDS),
    }
    with tcp_proxy(database_url) as proxy:
        cut_off = start_worker(proxy.url_for(database_url), tmp_path, 0, **env)
        direct = None
        try:
            row, _ = await service.start("ticks")
            instance_id = str(row["id"])
            wait_for_sync(lambda: any(pid == cut_off.pid for _, pid, _ in ticks(ticks_file)), timeout=60)

            proxy.set_mode("blackhole")
            cut_at = time.time()
            direct = start_worker(database_url, tmp_path, 1, **env)
            wait_for_sync(
                lambda: any(pid == direct.pid for _, pid, _ in ticks(ticks_file)), timeout=60, what="B to take over"
            )
            finished = await wait_finished(store, instance_id, timeout=60)
            assert finished["status"] == "completed", finished

            late = [at - cut_at for _, pid, at in ticks(ticks_file) if pid == cut_off.pid and at > cut_at]
            assert not late or max(late) < LEASE_SECONDS, f"A went on {max(late):.2f}s after the cut"
            [step] = [step for step in await store.list_steps(instance_id) if step["status"] == "completed"]
            assert step["worker_id"] != "" and f"-{cut_off.pid}-" not in step["worker_id"], step["worker_id"]
            assert cut_off.alive(), cut_off.output()
            assert "lease runs out before the database confirmed a renewal" in cut_off.output()

            # healed: with B gone, A runs new work on the connections it opens again by itself
            direct.stop()
            proxy.set_mode("forward")
            again, _ = await service.start("short")
            healed = await wait_finished(store, again["id"], timeout=90)
            assert healed["status"] == "completed", healed
            assert {pid for instance, pid, _ in ticks(ticks_file) if instance == str(again["id"])} == {cut_off.pid}
        finally:
            cut_off.stop()
            if direct is not None:
                direct.stop()
