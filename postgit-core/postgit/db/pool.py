"""Connections: the async pool every long-lived process shares."""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool


async def _configure(conn: AsyncConnection) -> None:
    await conn.set_autocommit(True)


async def open_pool(
    conninfo: str, *, min_size: int = 2, max_size: int = 8, name: str = "postgit"
) -> AsyncConnectionPool:
    """Open a pool of autocommit connections returning rows as dicts.

    Every statement runs in its own transaction unless a caller opens one with ``conn.transaction()``.
    """
    pool = AsyncConnectionPool(
        conninfo,
        min_size=min_size,
        max_size=max_size,
        kwargs={"row_factory": dict_row, "application_name": name},
        configure=_configure,
        open=False,
        reconnect_timeout=60,
    )
    await pool.open(wait=True, timeout=30)
    return pool
