"""Postgit's connections through PgBouncer in transaction pooling mode, where clients share server connections.

Two pools of one connection each take turns on PgBouncer's only server connection, each running its own statement
past psycopg's prepare threshold: the second one's prepared statement meets the first one's under the same name.
"""

from __future__ import annotations

import logging
import uuid

import psycopg
import pytest

from postgit.db import Store, open_pool
from postgit.db import pool as pool_module
from postgit.db.pool import PREPARE_THRESHOLD
from tests.conftest import admin_url
from tests.support.pgbouncer import pgbouncer_binary, pgbouncer_version, running_pgbouncer

BINARY = pgbouncer_binary()
VERSION = pgbouncer_version(BINARY) if BINARY else (0, 0)
pytestmark = pytest.mark.skipif(BINARY is None, reason="pgbouncer is not installed (apt-get install pgbouncer)")


async def take_turns(url: str, *, prepared_statements: bool) -> None:
    pools = [
        await open_pool(url, min_size=1, max_size=1, prepared_statements=prepared_statements, name="postgit-tests")
        for _ in range(2)
    ]
    try:
        first, second = Store(pools[0]), Store(pools[1])
        for _ in range(PREPARE_THRESHOLD + 2):
            assert await first.get_instance(uuid.uuid4()) is None
            assert await second.list_workflows() == []
    finally:
        for pool in pools:
            await pool.close()


async def test_without_prepared_statements_clients_share_server_connections(database_url):
    with running_pgbouncer(admin_url(), pool_size=1, max_prepared_statements=0) as bouncer:
        await take_turns(bouncer.url_for(database_url), prepared_statements=False)


async def test_prepared_statements_through_a_pooler_that_cannot_keep_them_fail_naming_the_setting(
    database_url, caplog, monkeypatch
):
    monkeypatch.setattr(pool_module, "_explained", False)
    with (
        running_pgbouncer(admin_url(), pool_size=1, max_prepared_statements=0) as bouncer,
        caplog.at_level(logging.ERROR, logger="postgit.db"),
        pytest.raises(psycopg.ProgrammingError) as failed,
    ):
        await take_turns(bouncer.url_for(database_url), prepared_statements=True)
    assert isinstance(failed.value, pool_module._LOST_PREPARED_STATEMENT)
    [record] = [r for r in caplog.records if r.name == "postgit.db"]
    assert "set POSTGIT_DB_PREPARED_STATEMENTS=off" in record.getMessage()


@pytest.mark.skipif(VERSION < (1, 22), reason=f"PgBouncer {VERSION[0]}.{VERSION[1]} cannot keep prepared statements")
async def test_prepared_statements_through_a_pooler_that_keeps_them(database_url):
    with running_pgbouncer(admin_url(), pool_size=1, max_prepared_statements=100) as bouncer:
        await take_turns(bouncer.url_for(database_url), prepared_statements=True)
