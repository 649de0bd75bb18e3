"""Announcing which instances changed: every :class:`~postgit.db.Store` notes the instances its writes changed.

At most every :data:`FLUSH_SECONDS` one short transaction of its own sends their ids with ``pg_notify`` on the
``postgit_change`` channel (:data:`postgit.engine.channels.CHANGE_CHANNEL`), which the console's live views wait on
(:class:`postgit.engine.changes.ChangeHub`). The group commits that carry steps never notify themselves:
PostgreSQL serialises transactions that notify, through their commit's WAL flush, and a busy worker sends a few
notifications a second however many steps it commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable

log = logging.getLogger("postgit.changes")

FLUSH_SECONDS = 0.05
"""How long a writer gathers changed ids before it announces them (one notification round trip)."""
EVERYTHING = "*"
"""The payload that says "too many instances changed to name them": every watcher wakes."""
MAX_PAYLOAD = 7900
"""Bytes of ids in one notification (PostgreSQL's limit is 8000)."""
MAX_NOTIFICATIONS = 20
"""Notifications one announcement sends at most; past them it sends :data:`EVERYTHING` instead."""
MAX_IDS = MAX_NOTIFICATIONS * (MAX_PAYLOAD // 37)
"""Ids one announcement names at most (what :data:`MAX_NOTIFICATIONS` hold): past them, :data:`EVERYTHING`."""


def change_payloads(ids: Iterable[str], everything: bool = False) -> list[str]:
    """The notifications that announce ``ids``: comma-separated, each under :data:`MAX_PAYLOAD` bytes."""
    if everything:
        return [EVERYTHING]
    payloads: list[str] = []
    current: list[str] = []
    size = 0
    for ident in sorted(ids):
        if current and size + len(ident) + 1 > MAX_PAYLOAD:
            payloads.append(",".join(current))
            current, size = [], 0
        current.append(ident)
        size += len(ident) + 1
    if current:
        payloads.append(",".join(current))
    return payloads if len(payloads) <= MAX_NOTIFICATIONS else [EVERYTHING]


class ChangeNotifier:
    """Gathers the ids of changed instances and announces them together, :data:`FLUSH_SECONDS` after the first.

    Args:
        send: sends a list of payloads on the change channel (the store's ``notify_changes``).
        flush_seconds: how long ids are gathered before they are sent.
    """

    def __init__(self, send: Callable[[list[str]], Awaitable[object]], flush_seconds: float = FLUSH_SECONDS):
        self._send = send
        self.flush_seconds = flush_seconds
        self._ids: set[str] = set()
        self._everything = False
        self._task: asyncio.Task[None] | None = None

    def changed(self, ids: Iterable[uuid.UUID | str]) -> None:
        """Note instances a committed write changed; they are announced shortly."""
        if self._everything:  # already announcing that everything changed: the ids would add nothing
            return
        before = len(self._ids)
        self._ids.update(str(ident) for ident in ids)
        if len(self._ids) > MAX_IDS:
            self.changed_everything()
        elif len(self._ids) != before:
            self._schedule()

    def changed_everything(self) -> None:
        """Note a committed write that changed instances it cannot name (every watcher will look again)."""
        self._everything = True
        self._ids.clear()
        self._schedule()

    def _schedule(self) -> None:
        if self._task is not None and not self._task.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop: nobody in this process could be watching anyway
            return
        self._task = loop.create_task(self._flush_later(), name="change-notifier")

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.flush_seconds)
        await self.flush()

    async def flush(self) -> None:
        """Announce what was noted, now. A failure is logged and forgotten: watchers fall back to polling."""
        payloads = change_payloads(self._ids, self._everything)
        self._ids, self._everything = set(), False
        if not payloads:
            return
        try:
            await self._send(payloads)
        except Exception as exc:
            log.debug("announcing %d change notifications failed: %s", len(payloads), exc)

    async def aclose(self) -> None:
        """Announce what is still noted, and stop (call before the pool closes)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.flush()
