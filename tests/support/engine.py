"""Run workers in-process and wait on instances, for engine tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from postgit.db import Store
from postgit.engine import Worker
from postgit.registry import NodeRegistry
from postgit.settings import WorkerSettings
from postgit_builtins.hit_endpoint import close_client
from tests.support.waiting import wait_for

TERMINAL = ("completed", "failed", "cancelled")


@asynccontextmanager
async def in_process_worker(
    store: Store, registry: NodeRegistry, database_url: str, **settings: Any
) -> AsyncIterator[Worker]:
    """A Worker running on this event loop; stopped (gracefully) on exit. ``tracer_provider``: OpenTelemetry's."""
    settings.setdefault("lease_seconds", 5.0)
    settings.setdefault("poll_seconds", 1.0)
    tracer_provider = settings.pop("tracer_provider", None)
    worker = Worker(
        store=store,
        registry=registry,
        settings=WorkerSettings(database_url=database_url, **settings),
        tracer_provider=tracer_provider,
    )
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(worker.started.wait(), 10)
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)
        await close_client()


async def wait_finished(store: Store, instance_id: uuid.UUID, timeout: float = 30.0) -> dict[str, Any]:
    """Wait until the instance reaches a terminal status; return its row."""

    async def finished() -> dict[str, Any] | None:
        row = await store.get_instance(instance_id)
        return row if row and row["status"] in TERMINAL else None

    return await wait_for(finished, timeout=timeout, what=f"instance {instance_id} to finish")


async def wait_event(
    store: Store, instance_id: uuid.UUID, kind: str, node_id: str | None = None, timeout: float = 20.0
) -> dict[str, Any]:
    """Wait until the instance has an event of ``kind`` (for ``node_id``); return it."""

    async def found() -> dict[str, Any] | None:
        for event in await store.events_since(instance_id):
            if event["kind"] == kind and (node_id is None or event["node_id"] == node_id):
                return event
        return None

    return await wait_for(found, timeout=timeout, what=f"event {kind} {node_id or ''} of {instance_id}")
