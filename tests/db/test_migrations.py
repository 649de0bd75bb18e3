"""Migrations: idempotent, safe when many processes start at once, tolerant of a newer schema."""

from __future__ import annotations

import asyncio
import logging

import psycopg
import pytest

from postgit.db.migrate import known_migrations, migrate
from tests.conftest import admin_url, url_for


@pytest.fixture
def empty_database():
    name = "postgit_migrations_test"
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield url_for(name)
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["direct", "pgbouncer"])
def migration_url(request, empty_database):
    """The empty database directly, then through PgBouncer in transaction pooling mode."""
    if request.param == "direct":
        return empty_database
    return request.getfixturevalue("pgbouncer").url_for(empty_database)


async def test_concurrent_migrations_apply_each_file_once(migration_url, empty_database):
    latest = known_migrations()[-1].version
    versions = await asyncio.wait_for(asyncio.gather(*[migrate(migration_url) for _ in range(5)]), 60)
    assert versions == [latest] * 5
    with psycopg.connect(empty_database) as conn:
        rows = conn.execute("SELECT version FROM postgit.schema_migrations ORDER BY version").fetchall()
    assert [r[0] for r in rows] == list(range(1, latest + 1))
    assert await migrate(migration_url) == latest


async def test_a_newer_schema_only_warns(empty_database, caplog):
    await migrate(empty_database)
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute("INSERT INTO postgit.schema_migrations (version, name) VALUES (999, 'from_the_future')")
    with caplog.at_level(logging.WARNING, logger="postgit.migrate"):
        assert await migrate(empty_database) == 999
    assert "newer than this release knows" in caplog.text
