"""Hearing which instances changed: one LISTEN per server process, fanned out to every watcher in it.

Every writer announces the instances it changed on :data:`~postgit.engine.channels.CHANGE_CHANNEL` (see
:mod:`postgit.db.changes`). A :class:`ChangeHub` keeps one connection listening (reconnecting with backoff when the
database goes away) and wakes the in-process watchers of the instances named, and every watcher of "anything" (list
pages). Nothing here blocks a request: a watcher waits on an :class:`asyncio.Event`. Notifications sent while the
hub was not listening are lost, so every watcher is woken when it (re)connects, and while it cannot listen a
watcher's wait is cut to :attr:`ChangeHub.degraded_seconds`: a page then polls slowly instead of freezing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Iterator

from psycopg import AsyncConnection

from postgit.db.changes import EVERYTHING
from postgit.db.pool import with_connection_defaults
from postgit.engine.channels import CHANGE_CHANNEL

log = logging.getLogger("postgit.changes")

LISTEN_APPLICATION = "postgit-changes"
"""The ``application_name`` of a hub's LISTEN connection (how an operator, or a test, finds it)."""
FIRST_RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 10.0


class ChangeWatch:
    """One watcher's view of a :class:`ChangeHub`: :meth:`wait` returns when a change it watches is announced."""

    def __init__(self, hub: ChangeHub):
        self._hub = hub
        self._changed = asyncio.Event()

    def _wake(self) -> None:
        self._changed.set()

    async def wait(self, seconds: float, *, unheard: float | None = None) -> bool:
        """Wait for a change (True, and the next wait waits for the next one) or ``seconds`` (False).

        While the hub is not listening the wait lasts ``unheard`` seconds at most (by default
        :attr:`ChangeHub.degraded_seconds`), and it ends at once when the hub closes (the server is stopping).
        """
        if self._hub.closed:
            return True
        if not self._hub.listening:
            seconds = min(seconds, self._hub.degraded_seconds if unheard is None else unheard)
        try:
            await asyncio.wait_for(self._changed.wait(), max(0.0, seconds))
        except TimeoutError:
            return False
        self._changed.clear()
        return True


class ChangeHub:
    """Fans the change notifications of one LISTEN connection out to this process's watchers.

    Args:
        degraded_seconds: the longest wait of a watcher while the hub is not listening.
    """

    def __init__(self, *, degraded_seconds: float = 2.0):
        self.degraded_seconds = degraded_seconds
        self._by_instance: dict[uuid.UUID, set[ChangeWatch]] = {}
        self._of_anything: set[ChangeWatch] = set()
        self.listening = False
        """Whether the LISTEN connection is up (notifications are heard)."""
        self.connections = 0
        """How many times the hub has connected and listened (tests wait for a reconnection with it)."""
        self.backend_pid: int | None = None
        """The PostgreSQL backend of the current LISTEN connection."""
        self.closed = False
        self._said_down = False
        self._connected = asyncio.Condition()

    @property
    def watchers(self) -> int:
        """How many watches are open."""
        return len(self._of_anything) + sum(len(watches) for watches in self._by_instance.values())

    @contextlib.contextmanager
    def watch(self, instance_id: uuid.UUID | None = None) -> Iterator[ChangeWatch]:
        """Watch one instance, or (None) any change at all, for the duration of the block.

        Open the watch before reading what it guards: a change committed after the read then wakes it.
        """
        watch = ChangeWatch(self)
        group = self._of_anything if instance_id is None else self._by_instance.setdefault(instance_id, set())
        group.add(watch)
        try:
            yield watch
        finally:
            group.discard(watch)
            if instance_id is not None and not group:
                self._by_instance.pop(instance_id, None)

    def publish(self, payload: str) -> None:
        """Wake the watchers of the instances a notification names (all of them for :data:`EVERYTHING`)."""
        if payload == EVERYTHING:
            self.wake_all()
            return
        for watch in self._of_anything:
            watch._wake()
        if not self._by_instance:
            return
        for part in payload.split(","):
            try:
                ident = uuid.UUID(part)
            except ValueError:
                continue
            for watch in self._by_instance.get(ident, ()):
                watch._wake()

    def wake_all(self) -> None:
        """Wake every watcher."""
        for watch in self._of_anything:
            watch._wake()
        for watches in self._by_instance.values():
            for watch in watches:
                watch._wake()

    def close(self) -> None:
        """Stop: every watcher wakes, and waits end at once from now on (the server is stopping)."""
        self.closed = True
        self.wake_all()

    async def wait_listening(self, connections: int = 1) -> None:
        """Wait until the hub has listened ``connections`` times and is listening (for tests and start-up)."""
        async with self._connected:
            await self._connected.wait_for(lambda: self.listening and self.connections >= connections)

    async def _set_listening(self, listening: bool, pid: int | None = None) -> None:
        self.listening = listening
        self.backend_pid = pid
        if listening:
            self.connections += 1
            # whatever changed while nobody listened was not heard: every watcher looks again
            self.wake_all()
        async with self._connected:
            self._connected.notify_all()

    async def run(self, conninfo: str) -> None:
        """LISTEN on ``conninfo`` and publish each notification, reconnecting with backoff, until cancelled."""
        delay = FIRST_RETRY_SECONDS
        conninfo = with_connection_defaults(conninfo, application_name=LISTEN_APPLICATION)
        while True:
            try:
                async with await AsyncConnection.connect(conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANGE_CHANNEL}")
                    if self._said_down:
                        log.info("listening for changes again")
                        self._said_down = False
                    await self._set_listening(True, conn.info.backend_pid)
                    delay = FIRST_RETRY_SECONDS
                    async for notify in conn.notifies():
                        self.publish(notify.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self._said_down:
                    log.warning("cannot listen for changes (%s): live pages poll until it can", exc)
                    self._said_down = True
                await self._set_listening(False)
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, MAX_RETRY_SECONDS)
