"""A server-sent events parser, following the WHATWG "event stream interpretation" rules.

Only what ``GET /instances/{id}/events`` needs: ``id``, ``event``, ``data`` (multi-line), ``retry`` and comments.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event.

    Attributes:
        event: the ``event:`` field, ``"message"`` when absent.
        data: the ``data:`` lines joined by newlines.
        id: the last event id seen so far in the stream (``id:`` persists across events), or None.
        retry: the reconnection time in milliseconds the server asked for, or None.
    """

    event: str
    data: str
    id: str | None
    retry: int | None = None


def iter_sse(lines: Iterable[str]) -> Iterator[ServerSentEvent]:
    """Parse decoded lines (without line terminators) into events; an event is dispatched at a blank line.

    An event still incomplete when ``lines`` ends is dropped, as the specification says.
    """
    event_type = ""
    data: list[str] = []
    last_id: str | None = None
    retry: int | None = None
    for line in lines:
        if not line:
            if data:
                yield ServerSentEvent(event_type or "message", "\n".join(data), last_id, retry)
            event_type, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "event":
            event_type = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            if "\0" not in value:
                last_id = value
        elif name == "retry" and value.isdigit():
            retry = int(value)
