"""``GET /instances/{id}/events``: an instance's events as a server-sent event stream.

The stream replays the events after the client's cursor (``?after=`` or the ``Last-Event-ID`` header), then
follows new ones until the instance finishes: it reads them when the server's change listener hears that the
instance changed (:class:`~postgit.engine.changes.ChangeHub`), and every :data:`STATUS_RECHECK_SECONDS` in any case;
while the listener cannot listen, it polls. It ends after a terminal instance event, or right
after the replay when the instance had already finished. When the server shuts down, open streams end at once
rather than hold the shutdown up, and when the database becomes unavailable they end too; clients resume with
``Last-Event-ID``. FastAPI sends a keep-alive comment when a stream is idle for 15 seconds and stops the generator
when the client goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from postgit.db import Store
from postgit.engine.changes import ChangeHub, ChangeWatch
from postgit.errors import InvalidInput
from postgit_server.auth import VIEWER
from postgit_server.dependencies import Service, Settings, Stopping
from postgit_server.inputs import MAX_EVENT_ID, InstanceId, LastEventIdHeader
from postgit_server.models import Event

router = APIRouter(tags=["instances"])
log = logging.getLogger("postgit.server")

TERMINAL_EVENTS = frozenset({"instance_completed", "instance_failed", "instance_cancelled"})
FINISHED = frozenset({"completed", "failed", "cancelled"})
PAGE_SIZE = 500
STATUS_RECHECK_SECONDS = 5.0
"""How often an idle stream re-reads the instance's status, in case it finished without a terminal event."""
EVENT_ID = re.compile(r"[0-9]{1,19}")


async def existing_instance(instance_id: InstanceId, service: Service) -> dict[str, Any]:
    """The instance row; NotFound (404) before anything is streamed."""
    return await service.get_instance(instance_id)


def cursor(
    after: Annotated[int | None, Query(ge=0, le=MAX_EVENT_ID, description="Send events with an id above this")] = None,
    last_event_id: LastEventIdHeader = None,
) -> int:
    """Where the stream starts: ``after``, else ``Last-Event-ID``, else the beginning.

    A ``Last-Event-ID`` is refused (400) unless it is an event id, plain decimal digits: ``int`` would also read
    signs, spaces, underscores and other scripts' digits, which the schema's ``integer`` does not allow.
    """
    if last_event_id is not None and (not EVENT_ID.fullmatch(last_event_id) or int(last_event_id) > MAX_EVENT_ID):
        raise InvalidInput(f"Last-Event-ID {last_event_id[:40]!r} is not an event id")
    if after is not None:
        return after
    return int(last_event_id) if last_event_id is not None else 0


@router.get(
    "/instances/{instance_id}/events",
    dependencies=[VIEWER],
    response_class=EventSourceResponse,
    responses={
        200: {"description": "`event: <kind>`, `id: <event id>`, `data: <Event as JSON>`"},
        400: {
            "description": "Last-Event-ID is not an event id",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        },
        404: {
            "description": "No such instance",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        },
    },
)
async def instance_events(
    instance: Annotated[dict[str, Any], Depends(existing_instance)],
    after: Annotated[int, Depends(cursor)],
    service: Service,
    settings: Settings,
    stopping: Stopping,
    request: Request,
) -> AsyncIterator[ServerSentEvent]:
    """Stream an instance's events (see :class:`Event` for each event's data) until it finishes."""
    events = follow(
        service.store,
        instance["id"],
        after=after,
        finished=instance["status"] in FINISHED,
        poll_seconds=settings.events_poll_seconds,
        stopping=stopping,
        changes=request.app.state.changes,
    )
    try:
        async for event in events:
            yield ServerSentEvent(id=str(event["id"]), event=event["kind"], data=Event.model_validate(event))
    except psycopg.OperationalError as exc:
        # The answer has started: no 503 now. End the stream; the client resumes with Last-Event-ID.
        log.info("event stream of instance %s ended: the database is unavailable (%s)", instance["id"], exc)


async def follow(
    store: Store,
    instance_id: uuid.UUID,
    *,
    after: int,
    finished: bool,
    poll_seconds: float,
    stopping: asyncio.Event,
    changes: ChangeHub | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """Yield the instance's events after ``after`` until it finishes or the server stops.

    With ``changes``, it looks for new ones when the instance changed (polling every ``poll_seconds`` only while
    the hub cannot listen); without, it polls every ``poll_seconds``.
    """
    with changes.watch(instance_id) if changes is not None else contextlib.nullcontext() as watch:
        async for event in _follow(store, instance_id, after, finished, poll_seconds, stopping, watch):
            yield event


async def _follow(
    store: Store,
    instance_id: uuid.UUID,
    after: int,
    finished: bool,
    poll_seconds: float,
    stopping: asyncio.Event,
    watch: ChangeWatch | None,
) -> AsyncIterator[dict[str, Any]]:
    checked_at = time.monotonic()
    while True:
        events = await store.events_since(instance_id, after, limit=PAGE_SIZE)
        for event in events:
            after = event["id"]
            yield event
            if event["kind"] in TERMINAL_EVENTS:
                return
        if len(events) == PAGE_SIZE:
            continue
        if finished:
            return
        if time.monotonic() - checked_at >= STATUS_RECHECK_SECONDS:
            checked_at = time.monotonic()
            row = await store.get_instance(instance_id)
            finished = row is None or row["status"] in FINISHED
            if finished:
                continue  # one more read: the terminal event committed together with the status
        if stopping.is_set():
            return  # the server is shutting down: the client resumes elsewhere with Last-Event-ID
        if watch is None:
            await asyncio.sleep(poll_seconds)
        else:
            await watch.wait(STATUS_RECHECK_SECONDS, unheard=poll_seconds)
