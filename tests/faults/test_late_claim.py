"""A claim whose answer comes late is renewed before its step starts, so the step is not stopped halfway and repeated.

The store answers the worker's first claim after most of the lease has gone by, as an overloaded machine or a slow
network would. Started at once, the step would reach its side effects with a tenth of a second of lease left; the
lease guard would stop it, and the instance would run again once its lease ran out. Renewed first, it runs once.
"""

from __future__ import annotations

import asyncio
import logging

from postgit import Node, Sequence
from postgit.db import Store
from postgit.plugins import load_registry
from postgit.service import WorkflowService
from tests.support.engine import in_process_worker, wait_finished
from tests.support.fault_plugin import load_plugin

LEASE_SECONDS = 2.0


class LateClaims(Store):
    """A store whose first claim that finds work answers after 80 % of the lease; it records every call."""

    def __init__(self, pool):
        super().__init__(pool)
        self.calls: list[str] = []

    async def claim_instances(self, **kwargs):
        claims = await super().claim_instances(**kwargs)
        if claims and "claim" not in self.calls:
            self.calls.append("claim")
            await asyncio.sleep(LEASE_SECONDS * 0.8)
        return claims

    async def renew_leases(self, leases, lease_seconds):
        if leases:
            self.calls.append("renew")
        return await super().renew_leases(leases, lease_seconds)


async def test_a_late_claim_is_renewed_before_its_step_starts(store, database_url, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, "postgit.worker")
    ticks_file = tmp_path / "ticks.txt"
    monkeypatch.setenv("TICKS_FILE", str(ticks_file))
    registry = load_registry(extra=[load_plugin()])
    service = WorkflowService(store, registry)
    await service.deploy("ticks", Sequence(id="root", children=[Node("Ticks", id="tick", seconds=1)]).to_json())
    late = LateClaims(store.pool)
    async with in_process_worker(late, registry, database_url, lease_seconds=LEASE_SECONDS):
        row, _ = await service.start("ticks")
        finished = await wait_finished(store, row["id"], timeout=60)
    assert finished["status"] == "completed", finished
    assert late.calls[:2] == ["claim", "renew"], "the late claim is renewed before anything else"
    assert len(ticks_file.read_text().splitlines()) == 10, "the step ran once, whole"
    assert "lease runs out" not in caplog.text
    steps = await store.list_steps(row["id"])
    assert [(step["node_id"], step["attempt"]) for step in steps] == [("tick", 1)], steps
