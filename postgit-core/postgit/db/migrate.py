"""Schema migrations: numbered ``.sql`` files applied in order, under an advisory lock, recorded in a table.

Servers and workers all call :func:`migrate` when they start. It costs one query when the schema is current;
otherwise each missing migration is applied in a transaction of its own that first takes a transaction-level
advisory lock, then reads the version again: the first process applies the migration while the others wait for the
lock, find it applied, and go on. A database that records a version this code does not know was migrated by a newer
release: that only warns. Migrations add columns with defaults and rename or drop nothing the previous release
reads, except where the README says otherwise (version 3 keys steps by run: the workers of an earlier release are
stopped before it is applied).

Nothing outlives a transaction, so migrations run through a pooler in transaction mode (PgBouncer's
``pool_mode = transaction``) as well as on a direct connection: a session-level lock would stay with whichever
server connection took it, and the unlock could reach another.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib.resources import files

import psycopg
from psycopg import AsyncConnection, sql

from postgit.db.pool import with_connection_defaults

log = logging.getLogger("postgit.migrate")

MIGRATION_LOCK_ID = 0x706F73746769_01
"""Advisory lock key held by a migration's transaction ('postgit' in hex, then 01): one at a time per database."""

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    """One numbered migration file."""

    version: int
    name: str
    sql: str


def known_migrations() -> list[Migration]:
    """The migrations shipped with this package, by version."""
    migrations = []
    for resource in files("postgit.db").joinpath("migrations").iterdir():
        match = _FILE_NAME.match(resource.name)
        if match:
            migrations.append(Migration(int(match.group(1)), match.group(2), resource.read_text(encoding="utf-8")))
    migrations.sort(key=lambda m: m.version)
    if [m.version for m in migrations] != list(range(1, len(migrations) + 1)):
        raise RuntimeError(f"migration files are not numbered 1..n: {[m.version for m in migrations]}")
    return migrations


async def migrate(conninfo: str) -> int:
    """Bring the database's ``postgit`` schema up to date; returns the schema version afterwards.

    Opens one connection of its own (``application_name`` ``postgit-migrate`` unless the conninfo names one) and
    closes it before returning. Raises :class:`psycopg.OperationalError` when the database cannot be reached: wrap
    the call in :func:`postgit.db.pool.wait_for_database` to wait for it instead.
    """
    migrations = known_migrations()
    latest = migrations[-1].version
    conninfo = with_connection_defaults(conninfo, application_name="postgit-migrate")
    # prepare_threshold=None: a connection this short-lived gains nothing from prepared statements
    async with await AsyncConnection.connect(conninfo, autocommit=True, prepare_threshold=None) as conn:
        current = await _current_version(conn)
        while current is None or current < latest:
            current = await _apply_next(conn, migrations)
    _warn_if_newer(current, latest)
    return current


async def _apply_next(conn: AsyncConnection, migrations: list[Migration]) -> int:
    """Apply the first migration the database lacks, in one transaction under the lock; the version afterwards."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_ID,))
        await conn.execute("CREATE SCHEMA IF NOT EXISTS postgit")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS postgit.schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current = await _current_version(conn) or 0
        migration = next((m for m in migrations if m.version > current), None)
        if migration is None:  # another process applied it while this one waited for the lock
            return current
        log.info("applying migration %04d_%s", migration.version, migration.name)
        await conn.execute(sql.SQL(migration.sql))  # type: ignore[arg-type] - a trusted packaged file
        await conn.execute(
            "INSERT INTO postgit.schema_migrations (version, name) VALUES (%s, %s)",
            (migration.version, migration.name),
        )
        return migration.version


async def _current_version(conn: AsyncConnection) -> int | None:
    try:
        cursor = await conn.execute("SELECT max(version) FROM postgit.schema_migrations")
    except psycopg.errors.UndefinedTable:
        return None
    except psycopg.errors.InvalidSchemaName:
        return None
    row = await cursor.fetchone()
    return row[0] if row else None


def _warn_if_newer(current: int, latest: int) -> None:
    if current > latest:
        log.warning(
            "the database schema is at version %d, newer than this release knows (%d): "
            "it was migrated by a newer Postgit; carrying on",
            current,
            latest,
        )
