"""Per-test databases: clones of a migrated template, emptied and reused by the next test instead of dropped.

Creating a database from the template and dropping it cost PostgreSQL up to 0.3 s of CPU (it copies every file of
the template, and syncs them where fsync is on), as much as many a test itself; emptying the tables a test wrote a few
rows to costs a few milliseconds. A database goes back to the pool only when its schema is still the template's and
the test left few rows; any other is dropped. It takes a new name each time, so a process a test left behind,
reconnecting, cannot reach the next test's rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import psycopg
from psycopg import sql

MAX_ROWS = 20_000
"""A database whose test left more rows than this is dropped: emptied with DELETE, it would keep their dead rows."""
RENAME_ATTEMPTS = 5

SYSTEM_SCHEMAS = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'"
FINGERPRINT = f"""
SELECT md5(concat_ws('|',
    (SELECT string_agg(concat_ws(':', c.oid, c.relname, c.relkind, c.relacl), ',' ORDER BY c.oid)
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {SYSTEM_SCHEMAS}),
    (SELECT string_agg(concat_ws(':', a.attrelid, a.attname, a.atttypid, a.attnotnull, a.attisdropped,
                                 pg_get_expr(d.adbin, d.adrelid)), ',' ORDER BY a.attrelid, a.attnum)
     FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE {SYSTEM_SCHEMAS} AND a.attnum > 0),
    (SELECT string_agg(concat_ws(':', p.oid, md5(p.prosrc)), ',' ORDER BY p.oid)
     FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {SYSTEM_SCHEMAS}),
    (SELECT string_agg(concat_ws(':', t.oid, t.tgenabled), ',' ORDER BY t.oid) FROM pg_trigger t),
    (SELECT string_agg(concat_ws(':', c.oid, c.convalidated), ',' ORDER BY c.oid) FROM pg_constraint c
     JOIN pg_namespace n ON n.oid = c.connamespace WHERE {SYSTEM_SCHEMAS}),
    (SELECT string_agg(n.oid::text, ',' ORDER BY n.oid) FROM pg_namespace n WHERE {SYSTEM_SCHEMAS}),
    (SELECT string_agg(s.setconfig::text, ',') FROM pg_db_role_setting s
     WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())),
    (SELECT string_agg(version::text, ',' ORDER BY version) FROM postgit.schema_migrations)
)) AS fingerprint
"""
TABLES = f"""
SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND {SYSTEM_SCHEMAS} AND NOT (n.nspname = 'postgit' AND c.relname = 'schema_migrations')
ORDER BY 1
"""
TERMINATE = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
RESET_SEQUENCES = """
SELECT setval(format('%I.%I', schemaname, sequencename), start_value, false) FROM pg_sequences
WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
"""


class DatabasePool:
    """This test process's databases: each test takes one (:meth:`take`) and hands it back (:meth:`give_back`).

    Args:
        template: the migrated database every database is cloned from.
        url_for: the URL of a database of the test server, by name.
        admin_url: a URL of the test server to create, rename and drop databases from.
    """

    def __init__(self, template: str, url_for: Callable[[str], str], admin_url: str):
        self.template = template
        self.url_for = url_for
        self.admin_url = admin_url
        self.free: list[str] = []
        with psycopg.connect(url_for(template)) as conn:
            self.fingerprint = _fingerprint(conn)
            # the tables a test's rows are deleted from: a database is reused only while its schema is the template's
            self.tables = [row[0] for row in conn.execute(TABLES).fetchall()]
            # rows the migrations write would be deleted with the test's: then every test gets a new clone
            self.reusable = not any(_has_rows(conn, table) for table in self.tables)

    def take(self) -> str:
        """The name of an empty database with the template's schema, for one test."""
        if self.free:
            return self.free.pop()
        name = _new_name()
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(self.template))
            )
        return name

    def give_back(self, name: str) -> None:
        """The test is over: empty ``name`` for the next test under a new name, or drop it."""
        renamed = self._rename(name) if self.reusable else None
        if renamed is None:
            self._drop(name)
        elif self._emptied(renamed):
            self.free.append(renamed)
        else:
            self._drop(renamed)

    def close(self) -> None:
        """Drop the databases waiting in the pool."""
        for name in self.free:
            self._drop(name)
        self.free.clear()

    def _rename(self, name: str) -> str | None:
        """Rename ``name`` to a new name once nothing is connected to it; None when something stays connected or the
        database is gone."""
        new_name = _new_name()
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for _ in range(RENAME_ATTEMPTS):
                conn.execute(TERMINATE, (name,))
                try:
                    conn.execute(
                        sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(name), sql.Identifier(new_name))
                    )
                except psycopg.errors.ObjectInUse:
                    continue
                except psycopg.errors.InvalidCatalogName:
                    return None  # the test dropped it
                return new_name
        return None

    def _emptied(self, name: str) -> bool:
        """Delete every row the test left (not the migrations'); False when the database should be dropped instead."""
        with psycopg.connect(self.url_for(name)) as conn:
            if _fingerprint(conn) != self.fingerprint:
                return False
            try:
                # no triggers and no foreign key checks while emptying (a superuser's setting): rows go in any order
                conn.execute("SET LOCAL session_replication_role = replica")
            except psycopg.errors.InsufficientPrivilege:
                conn.rollback()
                return False
            deleted = sum(
                conn.execute(sql.SQL("DELETE FROM {}").format(sql.SQL(table))).rowcount for table in self.tables
            )
            if deleted > MAX_ROWS:
                conn.rollback()
                return False
            conn.execute(RESET_SEQUENCES)
        return True

    def _drop(self, name: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _new_name() -> str:
    return f"postgit_test_{uuid.uuid4().hex[:12]}"


def _has_rows(conn: psycopg.Connection, table: str) -> bool:
    return conn.execute(sql.SQL("SELECT EXISTS (SELECT FROM {})").format(sql.SQL(table))).fetchone() == (True,)


def _fingerprint(conn: psycopg.Connection) -> str:
    row = conn.execute(FINGERPRINT).fetchone()
    assert row is not None
    return row[0]
