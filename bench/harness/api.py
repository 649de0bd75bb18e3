"""The real API: deploy a definition, start instances one at a time, many in flight or in batches, send events."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from harness.http import Connection


class ApiError(RuntimeError):
    """The server answered a request with an error."""


@dataclass(frozen=True)
class Started:
    """One started instance: its id, and the wall-clock times (``time.time()``) of its start request and response."""

    id: str
    sent_at: float
    returned_at: float


@dataclass(frozen=True)
class Sent:
    """One event sent: the stored event's id, and the wall-clock times (``time.time()``) of its request and response."""

    signal_id: int
    sent_at: float
    returned_at: float


@dataclass(frozen=True)
class StartBatch:
    """Instances started with many requests in flight, and how long it took from first request to last response."""

    started: list[Started]
    seconds: float
    in_flight: int

    @property
    def per_second(self) -> float:
        return len(self.started) / self.seconds if self.seconds > 0 else 0.0


class Api:
    """A client of one ``postgit-server``; use as ``async with Api(url) as api``.

    Deploys go through httpx; starts through :mod:`harness.http`'s lighter keep-alive connections, so that the
    client takes as little of the machine's CPU as it can while the start path is measured.
    """

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.client = httpx.AsyncClient(base_url=base_url, timeout=30.0)
        self._connection: Connection | None = None

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._connection is not None:
            await self._connection.__aexit__(None, None, None)
        await self.client.aclose()

    async def deploy(self, name: str, definition: dict[str, Any]) -> int:
        """Deploy ``definition`` as workflow ``name``; its version."""
        response = await self.client.post("/workflows", json={"name": name, "definition": definition})
        if response.status_code not in (200, 201):
            raise ApiError(f"deploying {name} answered {response.status_code}: {response.text}")
        return int(response.json()["version"])

    async def _own_connection(self) -> Connection:
        """This client's own keep-alive connection, opened on first use."""
        if self._connection is None:
            self._connection = await Connection(self.base_url).__aenter__()
        return self._connection

    async def start(self, name: str, input: Any = None, connection: Connection | None = None) -> Started:
        """Start one instance of ``name`` (on ``connection``, else on this client's own keep-alive connection)."""
        if connection is None:
            connection = await self._own_connection()
        sent_at = time.time()
        status, body = await connection.post_json(f"/workflows/{name}/instances", {"input": input})
        returned_at = time.time()
        if status != 201:
            raise ApiError(f"starting {name} answered {status}: {body}")
        return Started(str(body["id"]), sent_at, returned_at)

    async def start_many(
        self, name: str, count: int, in_flight: int, make_input: Callable[[int], Any] | None = None
    ) -> StartBatch:
        """Start ``count`` instances with ``in_flight`` requests outstanding at any time, one connection each.

        The instance numbered ``index`` gets ``make_input(index)`` as its input (default ``{"n": index}``).
        """
        started: list[Started] = []
        remaining = iter(range(count))
        input_for = make_input or (lambda index: {"n": index})

        async def client(connection: Connection) -> None:
            for index in remaining:
                started.append(await self.start(name, input_for(index), connection))

        return StartBatch(started, await self._on_connections(in_flight, client), in_flight)

    async def start_batches(
        self, name: str, count: int, batch_size: int, in_flight: int, make_input: Callable[[int], Any] | None = None
    ) -> StartBatch:
        """Start ``count`` instances with ``POST /workflows/{name}/instances/batch``, ``batch_size`` per request.

        ``in_flight`` requests outstanding at any time, one connection each. Every instance gets its own entry in
        ``started``, with its request's times.
        """
        started: list[Started] = []
        input_for = make_input or (lambda index: {"n": index})
        remaining = iter(range(0, count, batch_size))

        async def client(connection: Connection) -> None:
            for first in remaining:
                indexes = range(first, min(first + batch_size, count))
                body = {"instances": [{"input": input_for(index)} for index in indexes]}
                sent_at = time.time()
                status, answer = await connection.post_json(f"/workflows/{name}/instances/batch", body)
                returned_at = time.time()
                if status != 200 or answer["failed"]:
                    raise ApiError(f"starting a batch of {name} answered {status}: {str(answer)[:500]}")
                started.extend(Started(str(result["id"]), sent_at, returned_at) for result in answer["results"])

        return StartBatch(started, await self._on_connections(in_flight, client), in_flight)

    async def _on_connections(self, in_flight: int, client: Callable[[Connection], Awaitable[None]]) -> float:
        """Run ``client`` on ``in_flight`` connections of their own at once; the seconds they took together."""
        async with contextlib.AsyncExitStack() as stack:
            connections = [await stack.enter_async_context(Connection(self.base_url)) for _ in range(in_flight)]
            begin = time.perf_counter()
            await asyncio.gather(*(client(connection) for connection in connections))
            return time.perf_counter() - begin

    async def start_back_to_back(self, name: str, count: int) -> list[Started]:
        """Start ``count`` instances one after another, each request sent as soon as the previous one returned."""
        return [await self.start(name, {"n": index}) for index in range(count)]

    async def send_event(self, instance_id: str, name: str, data: Any = None, event_id: str | None = None) -> Sent:
        """Send the event ``name`` to one instance (``POST /instances/{id}/events``) on this client's connection."""
        connection = await self._own_connection()
        body = {"name": name, "data": data, "event_id": event_id}
        sent_at = time.time()
        status, answer = await connection.post_json(f"/instances/{instance_id}/events", body)
        returned_at = time.time()
        if status != 202:
            raise ApiError(f"sending {name} to {instance_id} answered {status}: {answer}")
        return Sent(int(answer["signal_id"]), sent_at, returned_at)
