"""Retention: finished instances past their retention are deleted with everything recorded of them."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from postgit import Node, Workflow
from postgit.engine.retention import PURGE_BATCH, RETENTION_LOCK_ID, Retention
from tests.support.engine import in_process_worker, wait_finished
from tests.support.waiting import wait_for

DAY = 86_400.0


async def finished_long_ago(database_url: str, instance_ids: list[uuid.UUID], days: float) -> None:
    """Make instances look as if they had finished ``days`` ago (with a step and an event each)."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(
            "UPDATE postgit.instances SET status = 'completed', run_at = NULL, lease_owner = NULL,"
            " lease_expires_at = NULL, finished_at = now() - make_interval(secs => %s) WHERE id = ANY(%s)",
            [days * DAY, instance_ids],
        )
        await conn.execute(
            "INSERT INTO postgit.steps (instance_id, run_key, node_id, attempt, status, started_at)"
            " SELECT id, 'a', 'a', 1, 'completed', now() FROM unnest(%s::uuid[]) AS id",
            [instance_ids],
        )
        await conn.execute(
            "INSERT INTO postgit.events (instance_id, kind) SELECT id, 'instance_completed'"
            " FROM unnest(%s::uuid[]) AS id",
            [instance_ids],
        )


async def count(database_url: str, table: str, instance_ids: list[uuid.UUID]) -> int:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute(f"SELECT count(*) FROM postgit.{table} WHERE instance_id = ANY(%s)", [instance_ids])
        return (await cursor.fetchone())[0]


async def start(service, name: str, n: int) -> list[uuid.UUID]:
    return [(await service.start(name, {"n": i}))[0]["id"] for i in range(n)]


async def test_instances_past_their_retention_go_with_their_steps_and_events(service, store, database_url):
    await service.deploy("plain", Node("Shout", id="a", text="x").to_json())
    await service.deploy("kept", Workflow(Node("Shout", id="a", text="x"), retention="10d").to_json())
    old = await start(service, "plain", 3)
    recent = await start(service, "plain", 2)
    kept = await start(service, "kept", 2)
    unfinished = await start(service, "plain", 1)
    await finished_long_ago(database_url, old, days=2)
    await finished_long_ago(database_url, recent, days=0.5)
    await finished_long_ago(database_url, kept, days=2)
    events_kept = await count(database_url, "events", recent + kept)

    assert await Retention(store, retention_seconds=DAY, interval=60).purge() == 3

    for instance_id in old:
        assert await store.get_instance(instance_id) is None
    assert await count(database_url, "steps", old) == 0
    assert await count(database_url, "events", old) == 0
    for instance_id in [*recent, *kept, *unfinished]:
        assert await store.get_instance(instance_id) is not None, "deleted before its retention was over"
    assert await count(database_url, "events", recent + kept) == events_kept


async def test_a_pass_deletes_in_batches_until_nothing_is_due(service, store, database_url):
    await service.deploy("plain", Node("Shout", id="a", text="x").to_json())
    old = await start(service, "plain", PURGE_BATCH * 2 + 7)
    await finished_long_ago(database_url, old, days=40)
    assert await Retention(store, retention_seconds=30 * DAY, interval=60).purge() == len(old)


async def test_without_a_default_only_workflows_with_a_retention_of_their_own_are_purged(service, store, database_url):
    await service.deploy("plain", Node("Shout", id="a", text="x").to_json())
    await service.deploy("short", Workflow(Node("Shout", id="a", text="x"), retention=3600).to_json())
    forever = await start(service, "plain", 1)
    short = await start(service, "short", 1)
    await finished_long_ago(database_url, forever + short, days=400)
    assert await Retention(store, retention_seconds=None, interval=60).purge() == 1
    assert await store.get_instance(short[0]) is None
    assert await store.get_instance(forever[0]) is not None


async def test_one_process_purges_at_a_time(service, store, database_url):
    await service.deploy("plain", Node("Shout", id="a", text="x").to_json())
    old = await start(service, "plain", 2)
    await finished_long_ago(database_url, old, days=2)
    async with await psycopg.AsyncConnection.connect(database_url) as other:
        await other.execute("SELECT pg_advisory_xact_lock(%s)", [RETENTION_LOCK_ID])
        assert await Retention(store, retention_seconds=DAY, interval=60).purge() == 0
        assert await store.get_instance(old[0]) is not None
    assert await Retention(store, retention_seconds=DAY, interval=60).purge() == 2


async def test_events_sent_by_key_expire_with_the_retention(service, store, database_url):
    await service.send_keyed_event("approved", "order-1", {"ok": True})
    await service.send_keyed_event("approved", "order-2", {"ok": True})
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("UPDATE postgit.signals SET created_at = now() - interval '2 days' WHERE key = 'order-1'")
    await Retention(store, retention_seconds=DAY, interval=60).purge()
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute("SELECT key FROM postgit.signals")
        assert [row[0] for row in await cursor.fetchall()] == ["order-2"]


async def test_idle_rate_limit_keys_are_deleted_busy_ones_kept(store, database_url):
    await store.take_rate_token("idle", 1.0)
    await store.take_rate_token("busy", 0.001)  # its next token is due in 1000 s
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("UPDATE postgit.rate_limits SET next_at = now() - interval '2 minutes' WHERE key = 'idle'")
    await Retention(store, retention_seconds=None, interval=60).purge()
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute("SELECT key FROM postgit.rate_limits")
        assert [row[0] for row in await cursor.fetchall()] == ["busy"]


async def test_a_worker_deletes_finished_instances_once_their_retention_is_over(service, store, registry, database_url):
    await service.deploy("quick", Workflow(Node("Shout", id="a", text="x"), retention=0.5).to_json())
    async with in_process_worker(store, registry, database_url, retention_interval_seconds=0.2):
        [instance_id] = await start(service, "quick", 1)
        await wait_finished(store, instance_id)

        async def gone() -> bool:
            return await store.get_instance(instance_id) is None

        await wait_for(gone, timeout=20, what="the worker to delete the finished instance")


@pytest.mark.parametrize(
    ("value", "seconds"), [("7d", 7 * DAY), ("12h", 43_200.0), ("90", 90.0), ("off", None), ("", 30 * DAY)]
)
def test_the_retention_setting(monkeypatch, value, seconds):
    from postgit.settings import retention_from_env

    monkeypatch.setenv("POSTGIT_RETENTION", value)
    assert retention_from_env() == seconds


@pytest.mark.parametrize("value", ["0", "0d", "soon", "-1d", "3 years"])
def test_a_bad_retention_setting_is_refused_naming_the_variable(monkeypatch, value):
    from postgit.errors import PostgitError
    from postgit.settings import retention_from_env

    monkeypatch.setenv("POSTGIT_RETENTION", value)
    with pytest.raises(PostgitError, match="POSTGIT_RETENTION"):
        retention_from_env()
