"""Group commit: step outcomes of many instances written in one transaction.

Each instance's task submits its outcome and waits. A single flusher writes everything submitted since its last
flush in one statement, each row fenced by its own lease token, then tells each task whether its row was
written. With plenty of work, one commit carries many steps; with little, a lone step commits at once.

When the connection dies under a write, the flusher finds out once it can reach the database again whether that
write committed (every instance row it writes carries the write's random ``commit_id``) and writes the batch again
only when it did not: a step whose outcome committed is never run again because of a lost connection.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time

import psycopg.errors

from postgit.db.records import CommitItem
from postgit.db.store import ROLLED_BACK, Store, Written
from postgit.metrics import COMMIT_BATCH_SIZE, COMMIT_LATENCY

log = logging.getLogger("postgit.worker")

MAX_BATCH = 500
ROLLBACK_RETRIES = 5
"""How often a batch that did not commit (a deadlock, a serialization failure, a lost connection) is written again."""
LOST, WRITTEN, PAUSED = 0, 1, 2
"""What became of a submitted item: its lease was lost (nothing written), written, or written to a paused instance."""
OUTCOME_CHECKS = 6
"""How often, 0.1 s to 3.2 s apart, the flusher asks whether a write whose connection died committed."""


class CommitUnknown(Exception):
    """Writing a batch failed (e.g. the database restarted): it may or may not have committed."""


class GroupCommitter:
    """Collects step outcomes and writes them in batches; see the module docstring."""

    def __init__(self, store: Store):
        self.store = store
        self._pending: list[tuple[CommitItem, asyncio.Future[int]]] = []
        self._ready = asyncio.Event()
        self._closed = False
        self._seq = itertools.count(1)

    async def submit(self, item: CommitItem) -> bool:
        """Queue one outcome; True once it is committed, False when its lease was lost (nothing was written).

        Raises:
            CommitUnknown: the write failed, so whether it committed is unknown.
        """
        return await self.submit_outcome(item) != LOST

    async def submit_outcome(self, item: CommitItem) -> int:
        """As :meth:`submit`: :data:`WRITTEN`, :data:`PAUSED` (written, and the instance is paused) or :data:`LOST`."""
        future = self._queue(item)
        return await future if future is not None else LOST

    def submit_nowait(self, item: CommitItem) -> None:
        """Queue an item nobody waits for (events only): it is written with the next batch, in order."""
        future = self._queue(item)
        if future is not None:
            future.add_done_callback(_consume)

    def _queue(self, item: CommitItem) -> asyncio.Future[int] | None:
        if self._closed:
            return None
        item["seq"] = next(self._seq)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        self._ready.set()
        return future

    async def run(self) -> None:
        """Flush batches until :meth:`close` is called and nothing is left."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._pending:
                batch, self._pending = _take_batch(self._pending)
                await self._flush(batch)
            if self._closed:
                return

    def close(self) -> None:
        """Stop after flushing what was submitted."""
        self._closed = True
        self._ready.set()

    async def _flush(self, batch: list[tuple[CommitItem, asyncio.Future[int]]]) -> None:
        COMMIT_BATCH_SIZE.observe(len(batch))
        began = time.perf_counter()
        try:
            written = await self._write([item for item, _ in batch])
        except Exception as exc:
            # Whether the transaction committed is unknown. Each instance's task hands its instance back (fenced by
            # its lease token), and it resumes from whatever the database holds: at least once, nothing lost.
            log.warning("writing %d step outcomes failed: %s", len(batch), exc)
            for _, future in batch:
                if not future.done():
                    future.set_exception(CommitUnknown(str(exc)))
            return
        COMMIT_LATENCY.observe(time.perf_counter() - began)
        for item, future in batch:
            if not future.done():
                seq = item["seq"]
                future.set_result(PAUSED if seq in written.paused else WRITTEN if seq in written else LOST)

    async def _write(self, items: list[CommitItem]) -> Written:
        """Write ``items``; a batch known not to have committed is written again."""
        for retry in itertools.count():
            commit_id = secrets.randbits(63)
            try:
                return await self.store.commit_steps(items, commit_id)
            except ROLLED_BACK as exc:
                if retry >= ROLLBACK_RETRIES:
                    raise
                log.info("writing %d step outcomes was rolled back (%s): writing them again", len(items), exc)
                await asyncio.sleep(0.01 * 2**retry)
            except psycopg.OperationalError as exc:
                if retry >= ROLLBACK_RETRIES:
                    raise
                written = await self._committed(items, commit_id, exc)
                if written is not None:
                    return written
                log.info(
                    "writing %d step outcomes failed before it committed (%s): writing them again", len(items), exc
                )
        raise AssertionError("unreachable")

    async def _committed(self, items: list[CommitItem], commit_id: int, failure: Exception) -> Written | None:
        """The ``seq`` of each item a write that failed with ``failure`` wrote; None when it did not commit.

        Raises ``failure`` when that cannot be found out: the database stays out of reach, or the batch holds
        events only (which mark no instance row).
        """
        ids = [item["id"] for item in items if not item.get("log_only")]
        if not ids:
            raise failure
        for check in range(OUTCOME_CHECKS):
            await asyncio.sleep(0.1 * 2**check)
            try:
                await self.store.pool.check()  # drops the pool's connections that died with the failed one
                found = await self.store.committed_instances(ids, commit_id)
            except psycopg.OperationalError:
                continue
            if not found:
                return None
            log.info("writing %d step outcomes lost its connection after it committed (%s)", len(items), failure)
            # whether an instance was paused is not known here: its worker learns it with its next write
            return Written(item["seq"] for item in items if item.get("log_only") or item["id"] in found)
        raise failure


def _take_batch(
    pending: list[tuple[CommitItem, asyncio.Future[int]]],
) -> tuple[list[tuple[CommitItem, asyncio.Future[int]]], list[tuple[CommitItem, asyncio.Future[int]]]]:
    """The next batch, in order, and what is left for later.

    A child instance's item and its parent's never share a batch: a statement cannot update one row twice, and
    the child's item updates its parent's row (to wake it) while the parent's own item may update it too.
    Everything after a deferred item of the same instance is deferred with it, to keep each instance's order.
    """
    batch: list[tuple[CommitItem, asyncio.Future[int]]] = []
    rest: list[tuple[CommitItem, asyncio.Future[int]]] = []
    ids: set[str] = set()
    parents: set[str] = set()
    deferred: set[str] = set()
    for entry in pending:
        item = entry[0]
        parent = item.get("parent_id")
        if (
            len(batch) >= MAX_BATCH
            or item["id"] in deferred
            or (parent is not None and parent in ids)
            or item["id"] in parents
        ):
            rest.append(entry)
            deferred.add(item["id"])
            continue
        batch.append(entry)
        ids.add(item["id"])
        if parent is not None:
            parents.add(parent)
    return batch, rest


def _consume(future: asyncio.Future[int]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved, so an unknown outcome of an events-only write is not reported as lost
