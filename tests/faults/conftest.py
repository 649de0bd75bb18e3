"""Fixtures for fault tests: a login role whose connection limit a test can drop to zero."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest


@pytest.fixture
def limited_role(database_url: str) -> Iterator[str]:
    """A login role (not a superuser, so connection limits apply to it) with what a server and a worker need on
    the test database; its name. Dropped afterwards."""
    role = f"postgit_limited_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT USAGE ON SCHEMA postgit TO {role}")
        conn.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA postgit TO {role}")
        conn.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA postgit TO {role}")
    try:
        yield role
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def refuse_connections(database_url: str, role: str, refuse: bool) -> None:
    """Set ``role``'s connection limit to 0 and end its sessions (refuse), or lift the limit."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"ALTER ROLE {role} CONNECTION LIMIT {0 if refuse else -1}")
        if refuse:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
