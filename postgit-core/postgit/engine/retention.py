"""Retention: finished instances are deleted once past their retention, in small batches, by one process at a time.

Every worker runs :class:`Retention` on its own; a transaction-scoped advisory lock lets one of them delete at a
time (the others find it held and wait for their next turn). A batch deletes at most :data:`PURGE_BATCH` instances
with their steps, runs, signals and events, so no statement holds locks for long, and after a full batch it waits
three times as long as the batch took, so that a backlog is deleted without taking the database from the work
running meanwhile. The instances a worker holds are never finished, so retention never meets a lease.

The same task caps each instance's events (its activity log; the engine reads its progress from steps and runs,
never from events): an instance with more than ``events_keep`` events keeps its first tenth and its latest ones,
and the events between are replaced by one ``events_compacted`` event that counts them by kind. It looks only at the
instances among the events written since its last pass (a mark in the database), in windows of
:data:`SCAN_WINDOW` events (at most :data:`SCAN_WINDOWS_PER_PASS` a pass), and removes at most
:data:`COMPACT_BATCH` events per statement.
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
PURGE_PAUSE_RATIO = 3.0
"""After each full batch, a pass waits this many times as long as the batch took."""
SCAN_WINDOW = 10_000
SCAN_WINDOWS_PER_PASS = 100
"""A pass reads at most this many windows (a million events), so a backlog never holds up the deleting."""
COMPACT_BATCH = 5_000


class Retention:
    """Deletes what is past its retention every ``interval`` seconds (jittered), until cancelled.

    Args:
        store: The worker's store.
        retention_seconds: How long instances of workflows without a retention of their own are kept (None: for
            ever); also how long an event sent by key waits for an instance to take it.
        interval: Seconds between passes.
        events_keep: The most events an instance keeps (None: all of them).
    """

    def __init__(
        self, store: Store, retention_seconds: float | None, interval: float, *, events_keep: int | None = None
    ):
        self.store = store
        self.retention_seconds = retention_seconds
        self.interval = interval
        self.events_keep = events_keep

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval * random.uniform(0.5, 1.0))
            try:
                await self.purge()
            except Exception as exc:  # the next pass tries again; a worker does not stop for its housekeeping
                log.warning("retention pass failed: %s", exc)
            try:
                await self.compact_events()
            except Exception as exc:
                log.warning("event compaction pass failed: %s", exc)

    async def compact_events(self) -> int:
        """Cap the instances with too many events among those written since the last pass; how many were removed.

        Stops early when another process holds the maintenance lock; the next pass goes on from the mark.
        """
        if self.events_keep is None:
            return 0
        head = max(1, self.events_keep // 10)
        tail = self.events_keep - head - 1  # one more for the compaction's own event
        after = await self.store.events_mark()
        removed = 0
        for _ in range(SCAN_WINDOWS_PER_PASS):
            found = await self.store.scan_events(after=after, window=SCAN_WINDOW, keep=self.events_keep)
            if found["last_id"] is None:
                break
            for instance_id in found["over"]:
                while True:
                    count = await self.store.compact_instance_events(
                        instance_id, head=head, tail=tail, limit=COMPACT_BATCH, lock_id=RETENTION_LOCK_ID
                    )
                    if count is None:
                        return removed  # another process is at it; the mark stays, the next pass goes on
                    removed += count
                    if count < COMPACT_BATCH:
                        break
            after = found["last_id"]
            await self.store.set_events_mark(after)
            if found["scanned"] < SCAN_WINDOW:
                break
        if removed:
            log.info("events: compacted %d events of long-running instances", removed)
        return removed

    async def purge(self) -> int:
        """One pass: delete batch after batch until nothing more is due; how many instances were deleted."""
        total = 0
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            purged = await self.store.purge_finished(
                retention_seconds=self.retention_seconds, limit=PURGE_BATCH, lock_id=RETENTION_LOCK_ID
            )
            if purged is None:
                return total  # another process is purging
            total += purged
            if purged < PURGE_BATCH:
                break
            # a backlog (a first pass over months of instances) is deleted at a quarter of the pace the database
            # allows, so that the work running meanwhile keeps most of it (the benchmark's O2)
            await asyncio.sleep((loop.time() - began) * PURGE_PAUSE_RATIO)
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
