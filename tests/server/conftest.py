"""Fixtures for the API server's tests: an in-process client on a fresh database, and sample definitions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.support.server import api_client

TOKEN = "s3cret-token"


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a server without an API token."""
    async with api_client(database_url) as client:
        yield client


@pytest.fixture
async def auth_client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a server whose API token is ``TOKEN`` (the client sends none by default)."""
    async with api_client(database_url, api_token=TOKEN) as client:
        yield client


def shout(node_id: str = "shout", text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "Shout", "params": {"text": text, **extra}}


def sequence(*children: dict[str, Any], node_id: str = "root") -> dict[str, Any]:
    return {"id": node_id, "type": "Sequence", "children": list(children)}


async def deploy(client: httpx.AsyncClient, name: str, definition: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await client.post("/workflows", json={"name": name, "definition": definition or shout()})
    assert response.status_code in (200, 201), response.text
    return response.json()


async def start(client: httpx.AsyncClient, name: str, **body: Any) -> dict[str, Any]:
    response = await client.post(f"/workflows/{name}/instances", json=body)
    assert response.status_code in (200, 201), response.text
    return response.json()
