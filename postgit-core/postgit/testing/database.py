"""The kit's database: created on a PostgreSQL server, migrated, its ``now()`` on the virtual clock.

One is created per test session (or per :class:`~postgit.testing.PostgitEnv` used on its own) and emptied before
each test, which costs a ``TRUNCATE`` instead of a ``CREATE DATABASE``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import uuid
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from postgit.db import migrate
from postgit.db.pool import first_line
from postgit.settings import optional_database_url_from_env
from postgit.testing.clock import SEARCH_PATH, SET_OFFSET, SETUP_STATEMENTS
from postgit.testing.embedded import embedded_server_url
from postgit.testing.errors import PostgitTestingError

CONNECT_TIMEOUT = 10
TABLES = "SELECT tablename FROM pg_tables WHERE schemaname = 'postgit' AND tablename <> 'schema_migrations'"


def server_url(url: str | None = None) -> str:
    """The PostgreSQL server to create the kit's database on: ``url``, else ``DATABASE_URL``, else embedded."""
    return url or optional_database_url_from_env() or embedded_server_url()


class KitDatabase:
    """A database of the kit's own; :meth:`create` it, :meth:`reset` it before each test, :meth:`drop` it at the end.

    Attributes:
        name: the database's name, ``postgit_testing_<pid>_<random>``.
        url: its connection string.
    """

    def __init__(self, server: str, name: str):
        self.server = server
        self.name = name
        self.url = _with_database(server, name)

    @classmethod
    def create(cls, server: str | None = None) -> KitDatabase:
        """Create, set up and migrate a new database on ``server`` (see :func:`server_url`).

        Raises:
            PostgitTestingError: the server cannot be reached, or refuses to create the database.
        """
        server = server_url(server)
        database = cls(server, f"postgit_testing_{os.getpid()}_{uuid.uuid4().hex[:8]}")
        name = sql.Identifier(database.name)
        try:
            with psycopg.connect(server, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(name))
        except psycopg.Error as exc:
            raise PostgitTestingError(
                f"cannot create the test database {database.name} on {_where(server)}: {first_line(exc)}"
            ) from exc
        try:
            with psycopg.connect(server, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as conn:
                conn.execute(sql.SQL("ALTER DATABASE {} SET search_path = " + SEARCH_PATH).format(name))
            with psycopg.connect(database.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as conn:
                for statement in SETUP_STATEMENTS:
                    conn.execute(statement)
            _run(migrate(database.url))
        except BaseException as exc:
            with contextlib.suppress(psycopg.Error):
                database.drop()
            if isinstance(exc, psycopg.Error):
                problem = first_line(exc)
                raise PostgitTestingError(f"cannot set up the test database {database.name}: {problem}") from exc
            raise
        return database

    def reset(self) -> None:
        """Empty every table and put the clock back to the system's time."""
        with psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as conn:
            tables = [row[0] for row in conn.execute(TABLES).fetchall()]
            if tables:
                names = sql.SQL(", ").join(sql.Identifier("postgit", table) for table in tables)
                conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(names))
            conn.execute(SET_OFFSET, {"offset": 0.0})

    def drop(self) -> None:
        """Drop the database (its connections are closed first)."""
        with psycopg.connect(self.server, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))


def _with_database(conninfo: str, name: str) -> str:
    params = conninfo_to_dict(conninfo)
    params["dbname"] = name
    return make_conninfo(**params)


def _where(conninfo: str) -> str:
    """The server's host and port, without credentials."""
    params = conninfo_to_dict(conninfo)
    return f"{params.get('host') or 'localhost'}:{params.get('port') or 5432}"


def _run(coroutine: Any) -> Any:
    """Run a coroutine to completion on a loop of its own, whether or not this thread already runs one."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(coroutine)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="postgit-testing-migrate")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")
