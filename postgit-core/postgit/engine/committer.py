"""Group commit: step outcomes of many instances written in one transaction.

Each instance's task submits its outcome and waits. A single flusher writes everything submitted since its last
flush in one statement, each row fenced by its own lease token, then tells each task whether its row was
written. With plenty of work, one commit carries many steps; with little, a lone step commits at once.
"""

from __future__ import annotations

import asyncio
import itertools
import logging

from postgit.db.records import CommitItem
from postgit.db.store import Store

log = logging.getLogger("postgit.worker")

MAX_BATCH = 500


class CommitUnknown(Exception):
    """Writing a batch failed (e.g. the database restarted): it may or may not have committed."""


class GroupCommitter:
    """Collects step outcomes and writes them in batches; see the module docstring."""

    def __init__(self, store: Store):
        self.store = store
        self._pending: list[tuple[CommitItem, asyncio.Future[bool]]] = []
        self._ready = asyncio.Event()
        self._closed = False
        self._seq = itertools.count(1)

    async def submit(self, item: CommitItem) -> bool:
        """Queue one outcome; True once it is committed, False when its lease was lost (nothing was written).

        Raises:
            CommitUnknown: the write failed, so whether it committed is unknown.
        """
        future = self._queue(item)
        return await future if future is not None else False

    def submit_nowait(self, item: CommitItem) -> None:
        """Queue an item nobody waits for (events only): it is written with the next batch, in order."""
        future = self._queue(item)
        if future is not None:
            future.add_done_callback(_consume)

    def _queue(self, item: CommitItem) -> asyncio.Future[bool] | None:
        if self._closed:
            return None
        item["seq"] = next(self._seq)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
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

    async def _flush(self, batch: list[tuple[CommitItem, asyncio.Future[bool]]]) -> None:
        try:
            written = await self.store.commit_steps([item for item, _ in batch])
        except Exception as exc:
            # Whether the transaction committed is unknown. Each instance's task hands its instance back (fenced by
            # its lease token), and it resumes from whatever the database holds: at least once, nothing lost.
            log.warning("writing %d step outcomes failed: %s", len(batch), exc)
            for _, future in batch:
                if not future.done():
                    future.set_exception(CommitUnknown(str(exc)))
            return
        for item, future in batch:
            if not future.done():
                future.set_result(item["seq"] in written)


def _take_batch(
    pending: list[tuple[CommitItem, asyncio.Future[bool]]],
) -> tuple[list[tuple[CommitItem, asyncio.Future[bool]]], list[tuple[CommitItem, asyncio.Future[bool]]]]:
    """The next batch, in order, and what is left for later.

    A child instance's item and its parent's never share a batch: a statement cannot update one row twice, and
    the child's item updates its parent's row (to wake it) while the parent's own item may update it too.
    Everything after a deferred item of the same instance is deferred with it, to keep each instance's order.
    """
    batch: list[tuple[CommitItem, asyncio.Future[bool]]] = []
    rest: list[tuple[CommitItem, asyncio.Future[bool]]] = []
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


def _consume(future: asyncio.Future[bool]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved, so an unknown outcome of an events-only write is not reported as lost
