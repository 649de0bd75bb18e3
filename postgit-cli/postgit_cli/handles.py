"""Handles of one instance: :class:`InstanceHandle` for :class:`~postgit_cli.Client`, and its async twin."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from postgit_cli.errors import InstanceCancelled, InstanceFailed, ResultTimeout
from postgit_cli.protocol import StreamDropped

if TYPE_CHECKING:
    from postgit_cli.api import AsyncClient, Client

FINISHED = frozenset({"completed", "failed", "cancelled"})
TERMINAL_KINDS = frozenset({"instance_completed", "instance_failed", "instance_cancelled"})
MAX_STREAM_SECONDS = 60.0
"""``result()`` without a timeout reopens the event stream (and looks at the instance again) this often at least."""


def outcome(detail: dict[str, Any]) -> Any:
    """The final state of a completed instance; the typed error of a failed or cancelled one."""
    if detail["status"] == "completed":
        return detail.get("state")
    if detail["status"] == "failed":
        message = (detail.get("error") or {}).get("message", "no error recorded")
        raise InstanceFailed(f"instance {detail['id']} failed: {message}", detail)
    raise InstanceCancelled(f"instance {detail['id']} was cancelled", detail)


def _remaining(deadline: float | None, instance_id: str) -> float:
    if deadline is None:
        return MAX_STREAM_SECONDS
    left = deadline - time.monotonic()
    if left <= 0:
        raise ResultTimeout(f"instance {instance_id} did not finish in time")
    return min(left, MAX_STREAM_SECONDS)


class InstanceHandle:
    """One instance: its ``id``, what can be asked of it, and what can be done with it.

    Attributes:
        id: the instance's id.
        created: from :meth:`Client.start`, whether the start created it (False: its idempotency key was used
            before, and this is that instance); None for :meth:`Client.handle`.
        started: from :meth:`Client.start`, the server's answer (``{"id", "status", "workflow", "created"}``).
    """

    def __init__(
        self, client: Client, instance_id: str, created: bool | None = None, started: dict[str, Any] | None = None
    ):
        self.client = client
        self.id = instance_id
        self.created = created
        self.started = started

    def __repr__(self) -> str:
        return f"InstanceHandle({self.id!r})"

    def detail(self, *, logs: bool = False) -> dict[str, Any]:
        """The instance as ``GET /instances/{id}`` shows it (each step attempt with its ``logs`` when asked)."""
        return self.client.get(self.id, logs=logs)

    def status(self) -> str:
        """``pending``, ``running``, ``waiting``, ``completed``, ``failed`` or ``cancelled``."""
        return str(self.detail()["status"])

    def result(self, timeout: float | None = None) -> Any:
        """Wait until the instance finishes, following its event stream; its final state.

        Raises:
            InstanceFailed: it failed (``.error`` says where and why).
            InstanceCancelled: it was cancelled.
            ResultTimeout: it had not finished after ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        last_id: str | None = None
        while True:
            detail = self.detail()
            if detail["status"] in FINISHED:
                return outcome(detail)
            wait = _remaining(deadline, self.id)
            try:
                with self.client.event_stream(self.id, last_id, read_timeout=wait) as stream:
                    for event in stream:
                        last_id = event.id or last_id
                        if event.event in TERMINAL_KINDS:
                            break
            except StreamDropped:
                time.sleep(min(0.2, wait))

    def cancel(self) -> None:
        """Cancel the instance (Conflict when it already finished)."""
        self.client.cancel(self.id)

    def send_event(self, name: str, data: Any = None, *, event_id: str | None = None) -> dict[str, Any]:
        """Send an event to the instance; see :meth:`Client.send_event`."""
        return self.client.send_event(self.id, name, data, event_id=event_id)


class AsyncInstanceHandle:
    """:class:`InstanceHandle` for :class:`~postgit_cli.AsyncClient`: the same attributes and methods, awaited."""

    def __init__(
        self,
        client: AsyncClient,
        instance_id: str,
        created: bool | None = None,
        started: dict[str, Any] | None = None,
    ):
        self.client = client
        self.id = instance_id
        self.created = created
        self.started = started

    def __repr__(self) -> str:
        return f"AsyncInstanceHandle({self.id!r})"

    async def detail(self, *, logs: bool = False) -> dict[str, Any]:
        return await self.client.get(self.id, logs=logs)

    async def status(self) -> str:
        return str((await self.detail())["status"])

    async def result(self, timeout: float | None = None) -> Any:  # noqa: ASYNC109 - the sync client's signature
        """Wait until the instance finishes; see :meth:`InstanceHandle.result`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last_id: str | None = None
        while True:
            detail = await self.detail()
            if detail["status"] in FINISHED:
                return outcome(detail)
            wait = _remaining(deadline, self.id)
            try:
                async with self.client.event_stream(self.id, last_id, read_timeout=wait) as stream:
                    async for event in stream:
                        last_id = event.id or last_id
                        if event.event in TERMINAL_KINDS:
                            break
            except StreamDropped:
                await asyncio.sleep(min(0.2, wait))

    async def cancel(self) -> None:
        await self.client.cancel(self.id)

    async def send_event(self, name: str, data: Any = None, *, event_id: str | None = None) -> dict[str, Any]:
        return await self.client.send_event(self.id, name, data, event_id=event_id)
