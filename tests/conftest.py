"""Fixtures: a fresh PostgreSQL database per test, cloned from a template migrated once per session."""

from __future__ import annotations

import asyncio
import compileall
import os
import sys
import tomllib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from postgit.db import Store, migrate, open_pool
from postgit.plugins import load_registry
from postgit.registry import NodeRegistry
from postgit.service import WorkflowService
from tests.support.databases import DatabasePool
from tests.support.pgbouncer import PgBouncer, pgbouncer_binary, running_pgbouncer
from tests.support.session_pg import session_server, stop_session_servers

# one template per test session, so that sessions running side by side do not drop each other's
TEMPLATE = f"postgit_test_template_{os.getpid()}"
# Without DATABASE_URL, each session starts its own embedded PostgreSQL, its data under .postgit/ (git-ignored).
EMBEDDED_PG_DIR = Path(__file__).resolve().parent.parent / ".postgit" / "test-pg"
# Safe against a killed process, not a power cut, which tests never face: no fsync, commits stay synchronous.
EMBEDDED_PG_SETTINGS = {"fsync": "off", "full_page_writes": "off"}


def admin_url() -> str:
    """``DATABASE_URL`` when set, else the session's embedded PostgreSQL, started on first use."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    return session_server(EMBEDDED_PG_DIR, settings=EMBEDDED_PG_SETTINGS).admin_url


SLOW = ("chaos", "packaging", "bench", "fuzz", "faults", "embedded", "cli")
"""Test folders whose tests are marked ``slow`` (they start processes: the CLI's run ``pst`` against a server
process): the inner loop, ``pytest -m "not slow"``, leaves them out, except the CLI's own unit tests."""


REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    # Where PYTHONDONTWRITEBYTECODE is set, Python caches no bytecode, and each of the hundreds of processes the suite
    # starts (servers, workers, pst) would compile the workspace's modules again: half of what starting one costs.
    # uv compiles the installed packages (compile-bytecode in pyproject.toml); the workspace's are compiled here, once,
    # by the controlling process before it starts any test process.
    if sys.dont_write_bytecode and not hasattr(config, "workerinput"):
        members = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]["members"]
        for member in [*members, "tests"]:
            compileall.compile_dir(REPO / member, quiet=1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(item.path)
        if path.parent.name in SLOW and path.name != "test_cli_units.py":
            item.add_marker(pytest.mark.slow)


def pytest_sessionfinish(session: pytest.Session) -> None:
    stop_session_servers()


def url_for(dbname: str) -> str:
    params = conninfo_to_dict(admin_url())
    params["dbname"] = dbname
    return make_conninfo(**params)


@pytest.fixture(scope="session")
def postgit_server_url() -> str:
    """The testing kit (``postgit_env``) creates its database on the suite's server, not an embedded one of its own."""
    return admin_url()


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


@pytest.fixture(scope="session")
def database_pool(template_database: str) -> Iterator[DatabasePool]:
    """This test process's databases, cloned from the template and reused once emptied."""
    pool = DatabasePool(template_database, url_for, admin_url())
    yield pool
    pool.close()


@pytest.fixture
def database_url(database_pool: DatabasePool) -> Iterator[str]:
    """The URL of an empty, migrated database of this test's own (see :class:`DatabasePool`)."""
    name = database_pool.take()
    try:
        yield url_for(name)
    finally:
        database_pool.give_back(name)


@dataclass(frozen=True)
class Route:
    """How Postgit's server and worker processes reach the test's database.

    Attributes:
        url: their ``DATABASE_URL``.
        env: the other settings they need on this route.
    """

    url: str
    env: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def pgbouncer() -> Iterator[PgBouncer]:
    """PgBouncer in transaction pooling mode in front of the test server (skips when pgbouncer is not installed)."""
    if pgbouncer_binary() is None:
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer)")
    with running_pgbouncer(admin_url()) as bouncer:
        yield bouncer


@pytest.fixture(params=["direct", "pgbouncer"])
def route(request: pytest.FixtureRequest, database_url: str) -> Route:
    """The test's database directly, then through PgBouncer in transaction pooling mode (a test taking this runs twice).

    Through PgBouncer, Postgit's processes are set up as the README's "Behind a connection pooler" says: LISTEN on a
    direct connection, and no prepared statements (the PgBouncer of Debian 12 cannot keep them).
    """
    if request.param == "direct":
        return Route(database_url)
    bouncer: PgBouncer = request.getfixturevalue("pgbouncer")
    return Route(
        bouncer.url_for(database_url),
        {"POSTGIT_LISTEN_DATABASE_URL": database_url, "POSTGIT_DB_PREPARED_STATEMENTS": "off"},
    )


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
