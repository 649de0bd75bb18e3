"""The Store against a real PostgreSQL: claims with SKIP LOCKED, lease fencing, idempotent writes."""

from __future__ import annotations

import asyncio
import logging
import uuid

import psycopg
import pytest

from postgit import Node, Sequence
from postgit.db import Store, open_pool
from postgit.db.store import ROLLBACK_RETRIES
from postgit.engine.committer import GroupCommitter

LEASE = 30.0


async def start_many(service, count: int) -> list[uuid.UUID]:
    flow = Sequence(id="root", children=[Node("Shout", id="a", text="x"), Node("Shout", id="b", text="y")])
    await service.deploy("flow", flow.to_json())
    return [(await service.start("flow", {"n": n}))[0]["id"] for n in range(count)]


def completion(claim: dict, seq: int = 1, **fields) -> dict:
    item = {
        "seq": seq,
        "id": str(claim["id"]),
        "lease_token": claim["lease_token"],
        "log_only": False,
        "status": "running",
        "state": None,
        "current_node": "b",
        "node_type": "Shout",
        "node_types": ["Shout"],
        "attempt": 1,
        "run_at": None,
        "run_in": LEASE,
        "keep_lease": True,
        "signal_seq": 0,
        "error": None,
        "wait_reason": None,
        "steps": [
            {
                "run_key": "a",
                "node_id": "a",
                "attempt": 1,
                "status": "completed",
                "params": {},
                "output": {"ok": 1},
                "error": None,
                "worker_id": "w",
                "started_at": "2026-01-01T00:00:00+00:00",
                "finished_at": "2026-01-01T00:00:01+00:00",
                "due_at": None,
                "resume": None,
                "wait_event": None,
                "wait_key": None,
            }
        ],
        "runs": [],
        "deliveries": [],
        "events": [{"kind": "step_completed", "node_id": "a", "data": {}}],
    }
    item.update(fields)
    return item


async def test_concurrent_claims_never_hand_out_one_instance_twice(service, store, database_url):
    ids = await start_many(service, 60)
    pools = [await open_pool(database_url, min_size=1, max_size=1) for _ in range(4)]
    try:
        stores = [Store(pool) for pool in pools]
        batches = await asyncio.gather(
            *[
                s.claim_instances(worker_id=f"w{i}", node_types=["Shout"], limit=20, lease_seconds=LEASE)
                for i, s in enumerate(stores)
            ]
        )
    finally:
        for pool in pools:
            await pool.close()
    claimed = [row["id"] for batch in batches for row in batch]
    assert len(claimed) == len(set(claimed)), "an instance was claimed twice"
    assert set(claimed) <= set(ids)
    assert len(claimed) == 60


async def test_claims_only_take_node_types_the_worker_has(service, store):
    await start_many(service, 3)
    assert await store.claim_instances(worker_id="w", node_types=["Sleep"], limit=10, lease_seconds=LEASE) == []
    assert len(await store.claim_instances(worker_id="w", node_types=["Shout"], limit=10, lease_seconds=LEASE)) == 3


async def test_a_first_claim_returns_the_events_sent_before_it_and_no_runs(service, store):
    """A first claim skips reading runs that cannot exist yet, but never an event sent before it."""
    quiet, sent_to = await start_many(service, 2)
    await store.send_instance_event(sent_to, "approval", {"by": "ada"}, "e-1")
    claims = await store.claim_instances(worker_id="w", node_types=["Shout"], limit=2, lease_seconds=LEASE)
    by_id = {claim["id"]: claim for claim in claims}
    assert (by_id[quiet]["steps"], by_id[quiet]["runs"], by_id[quiet]["signals"]) == (None, None, None)
    assert [signal["data"] for signal in by_id[sent_to]["signals"]] == [{"by": "ada"}]


async def test_a_stale_lease_writes_nothing_and_does_not_block_others(service, store):
    ids = await start_many(service, 2)
    stale, fresh = await store.claim_instances(worker_id="old", node_types=["Shout"], limit=2, lease_seconds=0.05)
    await asyncio.sleep(0.1)  # let the short lease expire
    reclaimed = await store.claim_instances(worker_id="new", node_types=["Shout"], limit=2, lease_seconds=LEASE)
    taken = next(r for r in reclaimed if r["id"] == stale["id"])
    assert taken["lease_token"] == stale["lease_token"] + 1

    before_events = await store.events_since(stale["id"])
    # one batch with a stale row (old token) and a valid one: only the valid one is written
    other = next(r for r in reclaimed if r["id"] == fresh["id"])
    written = await store.commit_steps([completion(stale, 1, state={"evil": True}), completion(other, 2)])
    assert written == {2}
    row = await store.get_instance(stale["id"])
    assert "evil" not in row["state"] and row["lease_owner"] == "new"
    assert await store.list_steps(stale["id"]) == []
    assert await store.events_since(stale["id"]) == before_events
    assert [step["run_key"] for step in await store.list_steps(fresh["id"])] == ["a"]
    assert set(ids) == {stale["id"], fresh["id"]}


async def test_a_batch_with_an_instance_s_old_lease_and_its_new_one_writes_the_new_one_only(service, store):
    """After an outage a worker's items of a lease that ran out can share a batch with the re-claimed instance's."""
    await start_many(service, 1)
    [old] = await store.claim_instances(worker_id="w", node_types=["Shout"], limit=1, lease_seconds=0.05)
    await asyncio.sleep(0.1)  # the lease runs out
    [new] = await store.claim_instances(worker_id="w", node_types=["Shout"], limit=1, lease_seconds=LEASE)
    assert new["id"] == old["id"] and new["lease_token"] == old["lease_token"] + 1
    charged = completion(new, 2)  # the same step attempt, charged as lost by the new lease
    charged["steps"] = [{**charged["steps"][0], "status": "failed", "output": None, "error": {"message": "lost"}}]
    written = await store.commit_steps([completion(old, 1), charged])
    assert written == {2}
    [step] = await store.list_steps(new["id"])
    assert (step["run_key"], step["attempt"], step["status"]) == ("a", 1, "failed")


async def test_renewal_and_release_are_fenced(service, store):
    [instance_id] = await start_many(service, 1)
    [claim] = await store.claim_instances(worker_id="w", node_types=["Shout"], limit=1, lease_seconds=LEASE)
    token = claim["lease_token"]
    assert await store.renew_leases({instance_id: token}, LEASE) == {instance_id}
    assert await store.renew_leases({instance_id: token - 1}, LEASE) == set()
    assert await store.release_leases({instance_id: token - 1}) == set()
    assert await store.release_leases({instance_id: token}) == {instance_id}
    row = await store.get_instance(instance_id)
    assert (row["status"], row["lease_owner"]) == ("pending", None)


async def test_cancel_fences_off_the_running_worker(service, store):
    [instance_id] = await start_many(service, 1)
    [claim] = await store.claim_instances(worker_id="w", node_types=["Shout"], limit=1, lease_seconds=LEASE)
    assert await store.cancel_instance(instance_id)
    assert await store.commit_steps([completion(claim)]) == set()
    assert (await store.get_instance(instance_id))["status"] == "cancelled"
    assert not await store.cancel_instance(instance_id), "a finished instance cannot be cancelled again"


async def test_start_with_an_idempotency_key_returns_the_same_instance(service):
    flow = Sequence(id="root", children=[Node("Shout", id="a", text="x")])
    await service.deploy("flow", flow.to_json())
    first, created = await service.start("flow", {"n": 1}, idempotency_key="order-42")
    again, created_again = await service.start("flow", {"n": 2}, idempotency_key="order-42")
    assert created and not created_again
    assert first["id"] == again["id"]


async def test_deploying_an_unchanged_definition_returns_the_existing_version(service):
    flow = Sequence(id="root", children=[Node("Shout", id="a", text="x")])
    changed = Sequence(id="root", children=[Node("Shout", id="a", text="y")])
    assert (await service.deploy("flow", flow.to_json())).version == 1
    again = await service.deploy("flow", flow.to_json())
    assert (again.version, again.created) == (1, False)
    assert (await service.deploy("flow", changed.to_json())).version == 2


async def test_a_group_commit_rolled_back_by_a_deadlock_is_written_again(service, store, database_url, caplog):
    """A batch PostgreSQL aborts to break a deadlock is known not to have committed: it is written again."""
    caplog.set_level(logging.INFO, "postgit.db")
    await start_many(service, 2)
    first, second = await store.claim_instances(worker_id="w", node_types=["Shout"], limit=2, lease_seconds=LEASE)
    committer = GroupCommitter(store)
    flusher = asyncio.create_task(committer.run())
    async with await psycopg.AsyncConnection.connect(database_url) as other:
        # the other transaction holds `second` and will ask for `first`, which the batch locks before `second`
        await other.execute("SELECT 1 FROM postgit.instances WHERE id = %s FOR UPDATE", [second["id"]])
        submitted = [
            asyncio.create_task(committer.submit(completion(first, 1))),
            asyncio.create_task(committer.submit(completion(second, 2))),
        ]
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as watcher:
            for _ in range(500):
                cursor = await watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                if (await cursor.fetchone())[0]:
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("the batch never waited for the row the other transaction holds")
        await other.execute("UPDATE postgit.instances SET updated_at = now() WHERE id = %s", [first["id"]])
        await other.commit()
    assert await asyncio.wait_for(asyncio.gather(*submitted), 30) == [True, True]
    committer.close()
    await flusher
    assert "rolled back" in caplog.text, "the batch was never chosen to break a deadlock"
    for claim in (first, second):
        assert [step["run_key"] for step in await store.list_steps(claim["id"])] == ["a"]


class LostAnswer(Store):
    """A store whose first group commit loses its connection: before the write reaches the database or after it
    committed (the answer is lost on the way back), as when PostgreSQL restarts under the write."""

    def __init__(self, pool, *, after_commit: bool):
        super().__init__(pool)
        self.after_commit = after_commit
        self.writes = 0

    async def commit_steps(self, batch, commit_id=0):
        self.writes += 1
        if self.writes > 1:
            return await super().commit_steps(batch, commit_id)
        if self.after_commit:
            await super().commit_steps(batch, commit_id)
        raise psycopg.OperationalError("server closed the connection unexpectedly")


async def lose_the_first_commit(service, store, caplog, *, after_commit: bool) -> tuple[LostAnswer, list[dict]]:
    caplog.set_level(logging.INFO, "postgit.worker")
    await start_many(service, 2)
    claims = await store.claim_instances(worker_id="w", node_types=["Shout"], limit=2, lease_seconds=LEASE)
    losing = LostAnswer(store.pool, after_commit=after_commit)
    committer = GroupCommitter(losing)
    flusher = asyncio.create_task(committer.run())
    submitted = [committer.submit(completion(claim, n)) for n, claim in enumerate(claims, 1)]
    assert await asyncio.wait_for(asyncio.gather(*submitted), 30) == [True, True]
    committer.close()
    await flusher
    for claim in claims:
        assert [step["run_key"] for step in await store.list_steps(claim["id"])] == ["a"]
        kinds = [event["kind"] for event in await store.events_since(claim["id"])]
        assert kinds.count("step_completed") == 1, kinds
    return losing, claims


async def test_a_group_commit_that_lost_its_answer_is_known_to_have_committed(service, store, caplog):
    """The connection dies after the commit: the committer finds the write's mark and does not write it again."""
    losing, _ = await lose_the_first_commit(service, store, caplog, after_commit=True)
    assert losing.writes == 1
    assert "lost its connection after it committed" in caplog.text


async def test_a_group_commit_that_never_reached_the_database_is_written_again(service, store, caplog):
    """The connection dies before the write commits: no mark is found, and the batch is written again."""
    losing, _ = await lose_the_first_commit(service, store, caplog, after_commit=False)
    assert losing.writes == 2
    assert "failed before it committed" in caplog.text


async def test_a_statement_rolled_back_by_a_deadlock_is_run_again_and_the_last_rollback_is_raised(store):
    async with store.pool.connection() as conn:
        await conn.execute("CREATE SEQUENCE IF NOT EXISTS rollback_attempts")
        await conn.execute(
            "CREATE OR REPLACE FUNCTION rolled_back_until(runs bigint) RETURNS bigint LANGUAGE plpgsql AS $$"
            " DECLARE n bigint := nextval('rollback_attempts'); BEGIN"
            " IF n < runs THEN RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '40P01'; END IF;"
            " RETURN n; END $$"
        )
    store._queries = {**store._queries, "rolled_back": "SELECT rolled_back_until(%(runs)s) AS run"}
    assert await store._fetch_all("rolled_back", {"runs": 3}) == [{"run": 3}], "two rollbacks, then it ran"
    async with store.pool.connection() as conn:
        await conn.execute("ALTER SEQUENCE rollback_attempts RESTART")
    with pytest.raises(psycopg.errors.DeadlockDetected):
        await store._fetch_all("rolled_back", {"runs": 1_000})
    async with store.pool.connection() as conn:
        attempts = await (await conn.execute("SELECT last_value FROM rollback_attempts")).fetchone()
    assert attempts["last_value"] == ROLLBACK_RETRIES + 1
