"""Instances started on the schema before control flow carry on after migration 0003 and finish."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg.types.json import Jsonb

from postgit import Node, Sequence, Sleep
from postgit.db import Store, migrate, open_pool
from postgit.db.migrate import known_migrations
from postgit.plugins import load_registry
from tests.conftest import admin_url, url_for
from tests.support.engine import in_process_worker, wait_finished

FLOW = Sequence(
    id="root",
    children=[
        Node("Shout", id="a", text="one", assign_to="$.a"),
        Sleep(id="nap", seconds=0.2),
        Node("Shout", id="b", text="{{ a.text }}", assign_to="$.b"),
    ],
).to_json()


@pytest.fixture
def old_database():
    """A database at schema version 2, as the release before control flow left it."""
    name = f"postgit_test_old_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = url_for(name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA postgit")
        conn.execute(
            "CREATE TABLE postgit.schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for migration in known_migrations()[:2]:
            conn.execute(migration.sql)
            conn.execute(
                "INSERT INTO postgit.schema_migrations (version, name) VALUES (%s, %s)",
                (migration.version, migration.name),
            )
    try:
        yield url
    finally:
        with psycopg.connect(admin_url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def old_instance(conn, *, status, done, current, attempt=1, resume=None, run_at="now()", steps=()):
    """An instance row (and its step rows) as the previous release's engine wrote them."""
    instance_id = uuid.uuid4()
    node_type = {"a": "Shout", "nap": "Sleep", "b": "Shout"}[current]
    state = {"input": None, "a": {"text": "ONE!"}} if "a" in done else {"input": None}
    conn.execute(
        "INSERT INTO postgit.instances (id, workflow, version, status, state, done, current_node, node_type, attempt,"
        f" resume, run_at) VALUES (%s, 'old', 1, %s, %s, %s, %s, %s, %s, %s, {run_at})",
        (instance_id, status, Jsonb(state), list(done), current, node_type, attempt, Jsonb(resume) if resume else None),
    )
    for node_id, step_attempt, step_status, output in steps:
        conn.execute(
            "INSERT INTO postgit.steps (instance_id, node_id, attempt, status, params, output, started_at, finished_at)"
            " VALUES (%s, %s, %s, %s, '{}', %s, now(), CASE WHEN %s = 'suspended' THEN NULL ELSE now() END)",
            (instance_id, node_id, step_attempt, step_status, Jsonb(output) if output else None, step_status),
        )
    return instance_id


async def test_instances_started_before_migration_3_finish_after_it(old_database):
    with psycopg.connect(old_database, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO postgit.workflows (name, version, definition, digest) VALUES ('old', 1, %s, 'd')",
            (Jsonb(FLOW),),
        )
        done_a = ("a", 1, "completed", {"text": "ONE!"})
        pending = old_instance(conn, status="pending", done=(), current="a")
        after_a = old_instance(conn, status="pending", done=("a",), current="nap", steps=[done_a])
        sleeping = old_instance(
            conn,
            status="waiting",
            done=("a",),
            current="nap",
            resume={"until": "2020-01-01T00:00:00+00:00", "data": {}},
            run_at="now() + interval '0.3 seconds'",
            steps=[done_a, ("nap", 1, "suspended", None)],
        )
        retrying = old_instance(
            conn,
            status="waiting",
            done=("a", "nap"),
            current="b",
            attempt=2,
            run_at="now() + interval '0.3 seconds'",
            steps=[done_a, ("nap", 1, "completed", {"slept_until": "2020"}), ("b", 1, "failed", None)],
        )

    assert await migrate(old_database) == known_migrations()[-1].version
    pool = await open_pool(old_database, min_size=1, max_size=4)
    store = Store(pool)
    registry = load_registry()
    try:
        async with in_process_worker(store, registry, old_database):
            finished = {key: await wait_finished(store, key) for key in (pending, after_a, sleeping, retrying)}
        for instance_id, instance in finished.items():
            assert instance["status"] == "completed", (instance_id, instance["error"])
            assert instance["state"]["b"] == {"text": "ONE!!"}
            steps = await store.list_steps(instance_id)
            assert [step["attempt"] for step in steps if step["run_key"] == "a"] == [1], "a ran once, before or after"
        retried = [step for step in await store.list_steps(retrying) if step["run_key"] == "b"]
        assert [(step["attempt"], step["status"]) for step in retried] == [(1, "failed"), (2, "completed")]
        slept = [step for step in await store.list_steps(sleeping) if step["run_key"] == "nap"]
        assert [(step["attempt"], step["status"]) for step in slept] == [(1, "completed")], "the sleep resumed"
    finally:
        await pool.close()
