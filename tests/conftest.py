"""Fixtures: a fresh PostgreSQL database per test, cloned from a template migrated once per session."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from postgit.db import Store, migrate, open_pool
from postgit.plugins import load_registry
from postgit.registry import NodeRegistry
from postgit.service import WorkflowService

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
# one template per test session, so that sessions running side by side do not drop each other's
TEMPLATE = f"postgit_test_template_{os.getpid()}"


def admin_url() -> str:
    return os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL


def url_for(dbname: str) -> str:
    params = conninfo_to_dict(admin_url())
    params["dbname"] = dbname
    return make_conninfo(**params)


@pytest.fixture(scope="session")
def template_database() -> Iterator[str]:
    """A database migrated to the current schema, to clone per test."""
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
    asyncio.run(migrate(url_for(TEMPLATE)))
    yield TEMPLATE
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')


@pytest.fixture
def database_url(template_database: str) -> Iterator[str]:
    """The URL of a fresh, migrated database that is dropped after the test."""
    name = f"postgit_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    try:
        yield url_for(name)
    finally:
        with psycopg.connect(admin_url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    pool = await open_pool(database_url, min_size=1, max_size=4, name="postgit-tests")
    try:
        yield Store(pool)
    finally:
        await pool.close()


@pytest.fixture(scope="session")
def registry() -> NodeRegistry:
    return load_registry()


@pytest.fixture
def service(store: Store, registry: NodeRegistry) -> WorkflowService:
    return WorkflowService(store, registry)


@pytest.fixture
def http_server():
    from tests.support.http_server import start_recording_server

    server = start_recording_server()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def smtp_server():
    from tests.support.smtp_server import start_smtp_server

    controller, handler = start_smtp_server()
    try:
        yield controller, handler
    finally:
        controller.stop()
