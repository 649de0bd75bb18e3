"""Follow an instance's live events until a terminal one, reconnecting when the stream drops."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from postgit_cli.api import Client
from postgit_cli.errors import CliError
from postgit_cli.protocol import StreamDropped

TERMINAL_KINDS = frozenset({"instance_completed", "instance_failed", "instance_cancelled"})
RECONNECT_VARIABLE = "POSTGIT_WATCH_RECONNECT_SECONDS"
DEFAULT_RECONNECT_SECONDS = 60.0
"""Seconds of failed reconnection attempts after which watching stops with an error."""
MAX_BACKOFF = 2.0


def follow_events(
    client: Client,
    instance_id: str,
    *,
    give_up_after: float | None = None,
    on_reconnect: Callable[[str], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield the instance's events (``{"id", "kind", "node_id", "data", "at"}``), oldest first, each once.

    Stops after a terminal event. When the stream breaks off, reconnects with the last event id seen, waiting a
    little longer each time, and calls ``on_reconnect(reason)``; after ``give_up_after`` seconds without a working
    connection it raises CliError. An HTTP error answer (not found, authentication) raises CliError at once.
    ``give_up_after`` defaults to ``POSTGIT_WATCH_RECONNECT_SECONDS`` (60).
    """
    if give_up_after is None:
        give_up_after = reconnect_seconds()
    last_id: str | None = None
    last_seq = -1
    failing_since: float | None = None
    backoff = 0.1
    while True:
        try:
            with client.event_stream(instance_id, last_id) as stream:
                failing_since, backoff = None, 0.1
                for sse in stream:
                    event = _decode(sse.data)
                    seq = _sequence(sse.id, event)
                    if seq is not None:
                        if seq <= last_seq:
                            continue  # replayed after a reconnect that did not honour Last-Event-ID
                        last_seq = seq
                    if sse.id is not None:
                        last_id = sse.id
                    yield event
                    if event.get("kind") in TERMINAL_KINDS:
                        return
            reason = "the server closed the event stream"
        except StreamDropped as exc:
            reason = exc.reason
            now = time.monotonic()
            failing_since = failing_since if failing_since is not None else now
            if now - failing_since > give_up_after:
                raise CliError(
                    f"lost the event stream of instance {instance_id} from {client.base_url}: {reason} "
                    f"(pst status {instance_id} shows where it is)"
                ) from None
        if on_reconnect is not None:
            on_reconnect(reason)
        time.sleep(backoff)
        backoff = min(backoff * 2, MAX_BACKOFF)


def reconnect_seconds() -> float:
    """``POSTGIT_WATCH_RECONNECT_SECONDS``: how long a broken event stream is retried (default 60)."""
    raw = os.environ.get(RECONNECT_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_RECONNECT_SECONDS
    try:
        value = float(raw)
    except ValueError:
        raise CliError(f"{RECONNECT_VARIABLE}={raw!r} is not a number of seconds", exit_code=2) from None
    if value < 0:
        raise CliError(f"{RECONNECT_VARIABLE}={raw!r} must not be negative", exit_code=2)
    return value


def _decode(data: str) -> dict[str, Any]:
    try:
        event = json.loads(data)
    except json.JSONDecodeError:
        raise CliError(f"the server sent an event that is not JSON: {data[:200]!r}") from None
    if not isinstance(event, dict):
        raise CliError(f"the server sent an event that is not a JSON object: {data[:200]!r}")
    return event


def _sequence(sse_id: str | None, event: dict[str, Any]) -> int | None:
    """The event's numeric id, used to skip duplicates; None when the server's ids are not numbers."""
    for candidate in (event.get("id"), sse_id):
        if isinstance(candidate, int):
            return candidate
        if isinstance(candidate, str) and candidate.isdigit():
            return int(candidate)
    return None
