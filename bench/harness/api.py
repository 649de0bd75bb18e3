"""The start path through the real API: deploy a definition, start instances one at a time or many in flight."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx


class ApiError(RuntimeError):
    """The server answered a request with an error."""


@dataclass(frozen=True)
class Started:
    """One started instance: its id, and the wall-clock times (``time.time()``) of its start request and response."""

    id: str
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
    """An HTTP client of one ``postgit-server``; use as ``async with Api(url) as api``."""

    def __init__(self, base_url: str, max_connections: int = 32):
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self.client = httpx.AsyncClient(base_url=base_url, timeout=30.0, limits=limits)

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.client.aclose()

    async def deploy(self, name: str, definition: dict[str, Any]) -> int:
        """Deploy ``definition`` as workflow ``name``; its version."""
        response = await self.client.post("/workflows", json={"name": name, "definition": definition})
        if response.status_code not in (200, 201):
            raise ApiError(f"deploying {name} answered {response.status_code}: {response.text}")
        return int(response.json()["version"])

    async def start(self, name: str, input: Any = None) -> Started:
        """Start one instance of ``name``."""
        sent_at = time.time()
        response = await self.client.post(f"/workflows/{name}/instances", json={"input": input})
        returned_at = time.time()
        if response.status_code != 201:
            raise ApiError(f"starting {name} answered {response.status_code}: {response.text}")
        return Started(str(response.json()["id"]), sent_at, returned_at)

    async def start_many(self, name: str, count: int, in_flight: int) -> StartBatch:
        """Start ``count`` instances with ``in_flight`` requests outstanding at any time."""
        started: list[Started] = []
        remaining = iter(range(count))

        async def client() -> None:
            for index in remaining:
                started.append(await self.start(name, {"n": index}))

        begin = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(in_flight)))
        return StartBatch(started, time.perf_counter() - begin, in_flight)

    async def start_back_to_back(self, name: str, count: int) -> list[Started]:
        """Start ``count`` instances one after another, each request sent as soon as the previous one returned."""
        return [await self.start(name, {"n": index}) for index in range(count)]
