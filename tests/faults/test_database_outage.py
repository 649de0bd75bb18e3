"""A ``postgit-server`` process whose database stops answering, refuses it, or has no connection left for it.

Every API request answers within a few seconds with 503 and a one-line ``detail`` naming the database (never a
hang, never a 500); ``/health`` says why; the server logs the outage once, and serves again on its own once the
database is back. The database sits behind a TCP proxy the test switches (``tests/support/tcp_proxy.py``), or is
reached as a role whose connection limit the test lowers to zero.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from psycopg.conninfo import make_conninfo

from tests.faults.conftest import refuse_connections
from tests.support.server import running_server
from tests.support.tcp_proxy import tcp_proxy
from tests.support.waiting import wait_for

DB_TIMEOUT = "2"
"""POSTGIT_DB_TIMEOUT_SECONDS for these servers."""
ANSWER_BOUND = 10.0
"""Seconds any request may take while the database is out: generous, for a loaded machine."""
RECOVERY_TIMEOUT = 30.0

SHOUT = {"id": "s", "type": "Shout", "params": {"text": "hi"}}


def requests(instance_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    """One request per route (but /health): method, path, JSON body."""
    return [
        ("GET", "/workflows", None),
        ("POST", "/workflows", {"name": "other", "definition": SHOUT}),
        ("GET", "/workflows/w", None),
        ("GET", "/workflows/w/versions/1", None),
        ("POST", "/workflows/w/instances", {"input": {"n": 1}}),
        ("GET", "/instances", None),
        ("GET", f"/instances/{instance_id}", None),
        ("GET", f"/instances/{instance_id}/events", None),
        ("POST", f"/instances/{instance_id}/cancel", None),
        ("GET", "/plugins", None),
        ("GET", "/workers", None),
        ("GET", "/outbox", None),
    ]


async def timed(client: httpx.AsyncClient, method: str, path: str, body: Any = None) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await client.request(method, path, json=body)
    return response, time.monotonic() - started


async def seed(client: httpx.AsyncClient) -> str:
    """Deploy ``w`` and start one instance of it (no worker runs it); its id."""
    assert (await client.post("/workflows", json={"name": "w", "definition": SHOUT})).status_code == 201
    started = await client.post("/workflows/w/instances", json={})
    assert started.status_code == 201, started.text
    return started.json()["id"]


async def assert_every_route_answers_503(client: httpx.AsyncClient, instance_id: str, why: str) -> None:
    """All routes at once (more requests than the pool has connections): each a 503 naming the database, in time."""
    sent = [*requests(instance_id), ("GET", "/health", None)]
    answers = await asyncio.gather(*(timed(client, method, path, body) for method, path, body in sent))
    for (method, path, _), (response, seconds) in zip(sent, answers, strict=True):
        where = f"{method} {path} ({why})"
        assert seconds < ANSWER_BOUND, f"{where} took {seconds:.1f}s"
        assert response.status_code == 503, f"{where}: {response.status_code} {response.text}"
        assert response.headers["content-type"] == "application/json", where
        body = response.json()
        if path == "/health":
            assert body["status"] == "unavailable", body
            assert body["database"].startswith("unreachable: "), body
        else:
            assert body["detail"].startswith("database unavailable: "), body
            assert "\n" not in body["detail"]
            assert response.headers["retry-after"].isdigit(), where


async def wait_until_served(client: httpx.AsyncClient) -> None:
    async def served() -> bool:
        try:
            health = await client.get("/health")
            return health.status_code == 200 and (await client.get("/workflows")).status_code == 200
        except httpx.TimeoutException:
            return False

    await wait_for(served, timeout=RECOVERY_TIMEOUT, interval=0.2, what="the server to serve again")


def assert_logged_once_each(log: str) -> None:
    assert log.count("database unreachable: ") == 1, log
    assert log.count("database reachable again") == 1, log
    assert "Traceback" not in log
    assert "Exception in ASGI application" not in log


@pytest.mark.parametrize("mode", ["blackhole", "refuse"])
async def test_a_server_cut_off_from_its_database_answers_503_in_time_and_recovers(database_url, tmp_path, mode):
    with (
        tcp_proxy(database_url) as proxy,
        running_server(proxy.url_for(database_url), tmp_path, POSTGIT_DB_TIMEOUT_SECONDS=DB_TIMEOUT) as (server, url),
    ):
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            instance_id = await seed(client)

            proxy.set_mode(mode)
            await assert_every_route_answers_503(client, instance_id, mode)
            await assert_every_route_answers_503(client, instance_id, f"{mode}, again")

            proxy.set_mode("forward")
            await wait_until_served(client)
            again = await client.post("/workflows/w/instances", json={})
            assert again.status_code == 201, again.text
            assert server.alive()
        assert_logged_once_each(server.output())


async def test_a_server_refused_for_too_many_connections_says_so_and_recovers(
    database_url: str, limited_role: str, tmp_path: Path
):
    role_url = make_conninfo(database_url, user=limited_role)
    with running_server(role_url, tmp_path, POSTGIT_DB_TIMEOUT_SECONDS=DB_TIMEOUT) as (server, url):
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            instance_id = await seed(client)

            refuse_connections(database_url, limited_role, refuse=True)
            await assert_every_route_answers_503(client, instance_id, "too many connections")
            # once the pool has tried to reconnect, the answers say why
            response = await client.get("/workflows")
            assert response.json()["detail"] == "database unavailable: too many connections; try again later"
            assert (await client.get("/health")).json()["database"] == "unreachable: too many connections"

            refuse_connections(database_url, limited_role, refuse=False)
            await wait_until_served(client)
        log = server.output()
        assert_logged_once_each(log)
        assert f'too many connections for role "{limited_role}"; retrying' in log
