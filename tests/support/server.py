"""Run the API server for tests: in-process (ASGI or uvicorn on loopback) or as a ``postgit-server`` subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from postgit_server.app import create_app
from postgit_server.settings import ServerSettings
from tests.support.ports import free_port
from tests.support.processes import Process, script
from tests.support.waiting import wait_for_sync


def server_settings(database_url: str, **overrides: Any) -> ServerSettings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "host": "127.0.0.1",
        "events_poll_seconds": 0.05,
        "pool_min_size": 1,
        "pool_max_size": 4,
    }
    values.update(overrides)
    return ServerSettings(**values)


@asynccontextmanager
async def api_client(database_url: str, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client calling the app in-process, with the app's lifespan (migrate, pool) running."""
    app = create_app(server_settings(database_url, **settings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://postgit.test") as client:
            yield client


@dataclass
class LiveServer:
    """An app served by uvicorn in this process."""

    url: str
    app: FastAPI


@asynccontextmanager
async def serving(database_url: str, **settings: Any) -> AsyncIterator[LiveServer]:
    """The app served by uvicorn on a loopback port of this event loop."""
    port = free_port()
    app = create_app(server_settings(database_url, port=port, **settings))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="none", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        deadline = asyncio.get_running_loop().time() + 20
        while not server.started:
            assert not task.done(), "uvicorn stopped while starting"
            assert asyncio.get_running_loop().time() < deadline, "uvicorn did not start within 20s"
            await asyncio.sleep(0.02)
        yield LiveServer(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


class ThreadedServer:
    """The app served by uvicorn on a loopback port, on an event loop of its own in a thread of this process.

    For tests that talk to a server over HTTP from other processes (``pst``) or from synchronous code, without
    the cost of starting a ``postgit-server`` process; tests that kill or restart the server use a process.
    """

    def __init__(self, database_url: str, **settings: Any):
        self.database_url = database_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(server_settings(database_url, port=self.port, **settings))
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", ws="none")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"server-{self.port}", daemon=True)

    def start(self) -> None:
        self._thread.start()

        def started() -> bool:
            assert self._thread.is_alive(), "uvicorn stopped while starting"
            return self._server.started

        wait_for_sync(started, timeout=30, interval=0.02, what="the in-process server to start")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(30)


@contextmanager
def serving_in_thread(database_url: str, **settings: Any) -> Iterator[ThreadedServer]:
    """A :class:`ThreadedServer` for the duration of the block."""
    server = ThreadedServer(database_url, **settings)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class SseEvent:
    """One server-sent event as a client parses it."""

    id: str | None
    event: str | None
    data: str | None

    def json(self) -> Any:
        return json.loads(self.data) if self.data is not None else None


async def sse_events(response: httpx.Response, comments: list[str] | None = None) -> AsyncIterator[SseEvent]:
    """Parse a ``text/event-stream`` response; comment lines are appended to ``comments`` when given."""
    fields: dict[str, list[str]] = {}
    async for line in response.aiter_lines():
        if line == "":
            if fields:
                data = "\n".join(fields["data"]) if "data" in fields else None
                yield SseEvent(id=_last(fields, "id"), event=_last(fields, "event"), data=data)
            fields = {}
        elif line.startswith(":"):
            if comments is not None:
                comments.append(line[1:].strip())
        else:
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value.removeprefix(" "))


def parse_sse(text: str) -> list[SseEvent]:
    """Parse a whole, already received ``text/event-stream`` body."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, list[str]] = {}
        for line in block.split("\n"):
            if line and not line.startswith(":"):
                name, _, value = line.partition(":")
                fields.setdefault(name, []).append(value.removeprefix(" "))
        if fields:
            data = "\n".join(fields["data"]) if "data" in fields else None
            events.append(SseEvent(id=_last(fields, "id"), event=_last(fields, "event"), data=data))
    return events


def _last(fields: dict[str, list[str]], name: str) -> str | None:
    return fields[name][-1] if name in fields else None


def server_env(database_url: str, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTGIT_")}
    env.update(DATABASE_URL=database_url, PORT=str(port), POSTGIT_HOST="127.0.0.1")
    env.update(extra)
    return env


def start_server(
    database_url: str, tmp_path: Path, *, port: int | None = None, log_name: str | None = None, **env: str
) -> tuple[Process, str]:
    """Start ``postgit-server`` on ``port`` (a free loopback one by default) and wait until ``/health`` answers.

    Returns the process and its URL; its log is ``tmp_path/log_name`` (``server-<port>.log`` by default).
    """
    port = port or free_port()
    log_path = tmp_path / (log_name or f"server-{port}.log")
    process = Process([script("postgit-server")], server_env(database_url, port, **env), log_path)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert process.alive(), f"postgit-server exited:\n{process.output()}"
        try:
            return httpx.get(f"{url}/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for_sync(healthy, timeout=30, interval=0.1, what="postgit-server to answer /health")
    except BaseException:
        process.stop()
        raise
    return process, url


@contextmanager
def running_server(database_url: str, tmp_path: Path, **env: str) -> Iterator[tuple[Process, str]]:
    """A ``postgit-server`` subprocess for the duration of the block (stopped with SIGTERM, then SIGKILL)."""
    process, url = start_server(database_url, tmp_path, **env)
    try:
        yield process, url
    finally:
        process.stop()
