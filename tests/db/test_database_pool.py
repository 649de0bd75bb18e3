"""The suite's per-test databases: a reused one is empty, renamed and has the template's schema; a changed one is
dropped."""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import admin_url, url_for
from tests.support.databases import MAX_ROWS, DatabasePool


@pytest.fixture
def pool(template_database: str):
    databases = DatabasePool(template_database, url_for, admin_url())
    yield databases
    databases.close()


def exists(name: str) -> bool:
    with psycopg.connect(admin_url()) as conn:
        return conn.execute("SELECT EXISTS (SELECT FROM pg_database WHERE datname = %s)", (name,)).fetchone() == (True,)


def test_a_database_comes_back_empty_under_a_new_name_with_its_sequences_reset(pool):
    first = pool.take()
    with psycopg.connect(url_for(first)) as conn:
        conn.execute("INSERT INTO postgit.maintenance_marks (name, value) VALUES ('mark', 1)")
        conn.execute("SELECT nextval('postgit.slot_seq')")
        left_open = psycopg.connect(url_for(first))  # a process a test left behind
    pool.give_back(first)

    with pytest.raises(psycopg.OperationalError):
        left_open.execute("SELECT 1")
    left_open.close()
    second = pool.take()
    assert second != first and not exists(first)
    with psycopg.connect(url_for(second)) as conn:
        assert conn.execute("SELECT count(*) FROM postgit.maintenance_marks").fetchone() == (0,)
        assert conn.execute("SELECT nextval('postgit.slot_seq')").fetchone() == (1,)
        assert conn.execute("SELECT count(*) > 0 FROM postgit.schema_migrations").fetchone() == (True,)
    pool.give_back(second)


def test_a_database_whose_schema_changed_that_holds_many_rows_or_that_was_dropped_is_not_reused(pool):
    changed = pool.take()
    with psycopg.connect(url_for(changed)) as conn:
        conn.execute("ALTER TABLE postgit.maintenance_marks ADD COLUMN extra int")
    pool.give_back(changed)
    assert pool.free == []

    full = pool.take()
    with psycopg.connect(url_for(full)) as conn:
        conn.execute(
            "INSERT INTO postgit.maintenance_marks (name, value) SELECT g::text, g FROM generate_series(1, %s) g",
            (MAX_ROWS + 1,),
        )
    pool.give_back(full)
    assert pool.free == []
    dropped = pool.take()
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{dropped}"')  # as a test of a database that goes away does
    pool.give_back(dropped)
    assert pool.free == []

    fresh = pool.take()
    assert fresh not in (changed, full) and not exists(changed) and not exists(full)
    pool.give_back(fresh)
