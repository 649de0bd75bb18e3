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
import secrets
import uuid
from collections.abc import Awaitable, Callable, Iterator

from psycopg import AsyncConnection

from postgit.db.changes import EVERYTHING
from postgit.db.pool import with_connection_defaults
from postgit.engine.channels import CHANGE_CHANNEL

log = logging.getLogger("postgit.changes")

LISTEN_APPLICATION = "postgit-changes"
"""The ``application_name`` of a hub's LISTEN connection (how an operator, or a test, finds it)."""
FIRST_RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 10.0
PROBE_PREFIX = "probe:"
"""The payload of a hub's probe starts so: no watcher wakes for it."""
PROBE_SECONDS = 5.0
"""How long a hub waits to hear its own probe before it counts as not listening."""
PROBE_INTERVAL_SECONDS = 60.0
"""How often a listening hub checks, with a probe, that it still hears notifications."""


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
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation that races its end
            async with asyncio.timeout(max(0.0, seconds)):
                await self._changed.wait()
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
        self._probe_token = ""
        self._generation = 0
        self._probe_heard = asyncio.Event()
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
        if payload.startswith(PROBE_PREFIX):
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

    async def _set_listening(self, listening: bool) -> None:
        self.listening = listening
        if listening:
            self.connections += 1
            # whatever changed while nobody listened was not heard: every watcher looks again
            self.wake_all()
        async with self._connected:
            self._connected.notify_all()

    async def _heard(self) -> None:
        if self.listening:
            return
        if self._said_down:
            log.info("listening for changes again")
            self._said_down = False
        await self._set_listening(True)

    async def _unheard(self, why: str) -> None:
        if not self._said_down:
            log.warning("cannot listen for changes (%s): live pages poll until it can", why)
            self._said_down = True
        if self.listening:
            await self._set_listening(False)

    async def run(self, conninfo: str, probe: Callable[[str], Awaitable[object]] | None = None) -> None:
        """LISTEN on ``conninfo`` and publish each notification, reconnecting with backoff, until cancelled.

        ``probe`` sends a notification on the change channel the way writers do (through their pool): the hub
        counts as listening only once it hears its own, checked again every :data:`PROBE_INTERVAL_SECONDS`, so that
        a connection that hears nothing (a pooler in transaction mode in between) leaves the pages polling rather
        than waiting in vain. Without ``probe``, a LISTEN that succeeds is trusted.
        """
        delay = FIRST_RETRY_SECONDS
        conninfo = with_connection_defaults(conninfo, application_name=LISTEN_APPLICATION)
        while True:
            try:
                async with await AsyncConnection.connect(conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANGE_CHANNEL}")
                    self.backend_pid = conn.info.backend_pid
                    delay = FIRST_RETRY_SECONDS
                    self._generation += 1
                    checker = None
                    if probe is not None:
                        checker = asyncio.create_task(self._check(probe, self._generation), name="change-probe")
                    if checker is None:
                        await self._heard()
                    try:
                        async for notify in conn.notifies():
                            if notify.payload.startswith(PROBE_PREFIX):
                                if notify.payload == self._probe_token:
                                    self._probe_heard.set()
                            else:
                                self.publish(notify.payload)
                    finally:
                        self._generation += 1  # a probe loop that missed its cancellation ends at its next turn
                        if checker is not None:
                            checker.cancel()
                            await asyncio.wait({checker}, timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._unheard(str(exc))
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, MAX_RETRY_SECONDS)

    async def _check(self, probe: Callable[[str], Awaitable[object]], generation: int) -> None:
        """Send a probe and wait to hear it, again and again: the hub is listening while it hears them.

        ``generation`` is the connection's: a loop whose connection has gone ends, whatever became of its
        cancellation.
        """
        while True:
            self._probe_token = PROBE_PREFIX + secrets.token_hex(8)
            self._probe_heard.clear()
            why = ""
            try:
                await probe(self._probe_token)
                async with asyncio.timeout(PROBE_SECONDS):
                    await self._probe_heard.wait()
            except TimeoutError:
                why = (
                    f"its own notification did not come back within {PROBE_SECONDS:g} s: is the LISTEN connection "
                    "going through a pooler in transaction mode? POSTGIT_LISTEN_DATABASE_URL can bypass it"
                )
            except Exception as exc:
                why = f"sending a probe failed: {exc}"
            if generation != self._generation:
                return
            if why:
                await self._unheard(why)
            else:
                await self._heard()
            await asyncio.sleep(PROBE_SECONDS if why else PROBE_INTERVAL_SECONDS)
