"""Retention: finished instances are deleted once past their retention, in small batches, by one process at a time.

Every worker runs :class:`Retention` on its own; a transaction-scoped advisory lock lets one of them delete at a
time (the others find it held and wait for their next turn). A batch deletes at most :data:`PURGE_BATCH` instances
with their steps, runs, signals and events, so no statement holds locks for long; the instances a worker holds are
never finished, so retention never meets a lease.
"""

from __future__ import annotations

import asyncio
import logging
import random

from postgit.db.store import Store

log = logging.getLogger("postgit.worker")

RETENTION_LOCK_ID = 0x706F73746769_02
"""Advisory lock key held while purging ('postgit' in hex, then 02)."""
PURGE_BATCH = 500


class Retention:
    """Deletes what is past its retention every ``interval`` seconds (jittered), until cancelled.

    Args:
        store: The worker's store.
        retention_seconds: How long instances of workflows without a retention of their own are kept (None: for
            ever); also how long an event sent by key waits for an instance to take it.
        interval: Seconds between passes.
    """

    def __init__(self, store: Store, retention_seconds: float | None, interval: float):
        self.store = store
        self.retention_seconds = retention_seconds
        self.interval = interval

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval * random.uniform(0.5, 1.0))
            try:
                await self.purge()
            except Exception as exc:  # the next pass tries again; a worker does not stop for its housekeeping
                log.warning("retention pass failed: %s", exc)

    async def purge(self) -> int:
        """One pass: delete batch after batch until nothing more is due; how many instances were deleted."""
        total = 0
        while True:
            purged = await self.store.purge_finished(
                retention_seconds=self.retention_seconds, limit=PURGE_BATCH, lock_id=RETENTION_LOCK_ID
            )
            if purged is None:
                return total  # another process is purging
            total += purged
            if purged < PURGE_BATCH:
                break
        if self.retention_seconds is not None:
            while await self.store.purge_keyed_signals(retention_seconds=self.retention_seconds, limit=PURGE_BATCH):
                pass
            while await self.store.purge_audit(retention_seconds=self.retention_seconds, limit=PURGE_BATCH):
                pass
        while await self.store.purge_rate_limits(limit=PURGE_BATCH):
            pass
        if total:
            log.info("retention: deleted %d finished instances", total)
        return total
