"""What the server's ``/metrics`` adds to the engine's metrics: what only the database knows.

Read on scrape, one short transaction with a statement timeout, and kept for a moment so that several scrapers
(or one that retries) cost one read. A database that is down or slow makes ``postgit_database_up`` 0 and leaves
the database's series out; the scrape still answers at once with everything else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from postgit.db import Store
from postgit.service import LIVE_WORKER_SECONDS

log = logging.getLogger("postgit.server")

STATUSES = ("pending", "running", "waiting", "completed", "failed", "cancelled")
READ_TIMEOUT_SECONDS = 2.0
"""How long a scrape waits for the database before answering without its series."""
FRESH_SECONDS = 1.0
"""A read this recent answers the next scrape too."""


class DatabaseMetrics(Collector):
    """Instances by status, the oldest due instance's age, live workers: read by :meth:`refresh`, then collected."""

    def __init__(self, store: Store, timeout_seconds: float = READ_TIMEOUT_SECONDS):
        self.store = store
        self.timeout_seconds = timeout_seconds
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self._snapshot: dict[str, Any] | None = None
        self._read_at = 0.0
        self._reading: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        """Read the database unless a read is fresh or under way (then wait for that one); never raises."""
        if self._snapshot is not None and time.monotonic() - self._read_at < FRESH_SECONDS:
            return
        if self._reading is None or self._reading.done():
            self._reading = asyncio.create_task(self._read())
        await asyncio.shield(self._reading)

    async def _read(self) -> None:
        try:
            self._snapshot = await asyncio.wait_for(
                self.store.metrics_snapshot(STATUSES, LIVE_WORKER_SECONDS, self.timeout_seconds),
                self.timeout_seconds + 0.5,
            )
        except Exception as exc:  # TimeoutError included
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.info("metrics: the database did not answer (%s)", reason)
            self._snapshot = None
        self._read_at = time.monotonic()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snapshot = self._snapshot
        yield GaugeMetricFamily(
            "postgit_database_up",
            "1 when the last read of the database for metrics answered in time, else 0",
            value=0 if snapshot is None else 1,
        )
        if snapshot is None:
            return
        instances = GaugeMetricFamily("postgit_instances", "Instances by status", labels=["status"])
        counts = snapshot["instances"] or {}
        for status in STATUSES:
            instances.add_metric([status], counts.get(status, 0))
        yield instances
        yield GaugeMetricFamily(
            "postgit_oldest_due_instance_age_seconds",
            "How long the instance due the longest has been waiting for a worker (0 when none is due)",
            value=max(0.0, snapshot["oldest_due_seconds"] or 0.0),
        )
        yield GaugeMetricFamily(
            "postgit_live_workers",
            f"Workers whose heartbeat is more recent than {LIVE_WORKER_SECONDS:g} s",
            value=snapshot["live_workers"],
        )

    async def exposition(self) -> bytes:
        """The text of a scrape: this process's metrics, then the database's."""
        await self.refresh()
        return generate_latest(REGISTRY) + generate_latest(self.registry)
