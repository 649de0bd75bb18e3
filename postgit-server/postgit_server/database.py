"""The server's database: waiting for it at start, its bounded pool, and why it is unavailable, in a few words.

Every request's wait on the database is bounded by ``POSTGIT_DB_TIMEOUT_SECONDS``: to get a connection from the
pool (psycopg_pool's ``timeout``; the pool's own attempts to connect give up as soon, ``connect_timeout``), and then
for the database to answer on it (the pool's ``hold_timeout``). Past either, the request fails with a
:class:`psycopg.OperationalError`, which :mod:`postgit_server.errors` answers with 503 and
:func:`unavailable_reason`.
"""

from __future__ import annotations

import logging
import math

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from postgit.db.migrate import migrate
from postgit.db.pool import (
    DatabaseTimeout,
    DatabaseWatch,
    first_line,
    open_pool,
    wait_for_database,
    with_connection_defaults,
)
from postgit_server.settings import ServerSettings

log = logging.getLogger("postgit.server")

_REASONS: list[tuple[tuple[str, ...], str]] = [
    (("too many", "connection slots"), "too many connections"),
    (("starting up", "shutting down", "in recovery"), "the database is starting up or shutting down"),
    (("terminating connection",), "the database ended the connection"),
    (("timeout expired", "timed out"), "connection timed out"),
    (("Connection refused",), "connection refused"),
    (("does not exist", "authentication failed", "no pg_hba.conf entry"), "login refused (database, role or password)"),
]
"""Fragments of libpq's messages (which carry no SQLSTATE when connecting), and the few words a client gets."""


async def migrate_when_reachable(settings: ServerSettings, watch: DatabaseWatch) -> int:
    """Migrate the schema, waiting (with backoff, logging once) while the database cannot be reached."""
    return await wait_for_database(lambda: migrate(settings.database_url), watch)


async def open_server_pool(settings: ServerSettings, watch: DatabaseWatch) -> AsyncConnectionPool:
    """The server's pool, once it has its first connections (waiting for them like :func:`migrate_when_reachable`).

    Connecting gives up within the request timeout too (libpq counts whole seconds, at least 2), so that a request
    refused for want of a connection can say why the pool could not connect.
    """
    connect_timeout = str(max(2, math.ceil(settings.db_timeout_seconds)))
    conninfo = with_connection_defaults(settings.database_url, connect_timeout=connect_timeout)
    return await wait_for_database(
        lambda: open_pool(
            conninfo,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            name="postgit-server",
            timeout=settings.db_timeout_seconds,
            hold_timeout=settings.db_timeout_seconds,
            watch=watch,
            prepared_statements=settings.prepared_statements,
        ),
        watch,
    )


def unavailable_reason(exc: psycopg.OperationalError, watch: DatabaseWatch, settings: ServerSettings) -> str:
    """Why the database did not serve a request, in a few words fit for any client (no host, port or role)."""
    if isinstance(exc, DatabaseTimeout):
        return f"no answer within {settings.db_timeout_seconds:g} s"
    if isinstance(exc, PoolTimeout):
        if watch.last_error is not None:  # the pool cannot connect: say why
            return _reason(watch.last_error, "cannot connect")
        return f"no connection free within {settings.db_timeout_seconds:g} s"
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return "query cancelled"
    if exc.sqlstate and exc.sqlstate.startswith("40"):  # transaction rollback: a deadlock, a serialization failure
        return "conflicting transaction"
    return _reason(first_line(exc), f"error {exc.sqlstate}" if exc.sqlstate else "connection lost")


def _reason(message: str, otherwise: str) -> str:
    for fragments, reason in _REASONS:
        if any(fragment in message for fragment in fragments):
            return reason
    return otherwise
