"""Capped events: the middle of a long instance's activity log is replaced by one `events_compacted` event."""

from __future__ import annotations

import uuid

import psycopg

from postgit import ForEach, Node, Sequence
from postgit.engine import retention as retention_module
from postgit.engine.retention import RETENTION_LOCK_ID, Retention
from tests.support.engine import in_process_worker, wait_finished


async def sql(database_url: str, query: str, *params) -> list[tuple]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cursor = await conn.execute(query, params)
        return await cursor.fetchall() if cursor.description else []


async def add_events(database_url: str, instance_id: uuid.UUID, kinds: list[str], node_id: str | None = None) -> None:
    """Log ``kinds`` for the instance, a minute ago (old enough for the compaction pass to look at)."""
    await sql(
        database_url,
        "INSERT INTO postgit.events (instance_id, kind, node_id, data, at)"
        " SELECT %s, kind, %s, jsonb_build_object('n', n), now() - interval '1 minute'"
        " FROM unnest(%s::text[]) WITH ORDINALITY AS k(kind, n)",
        instance_id,
        node_id,
        kinds,
    )
    await age_events(database_url, instance_id)


async def age_events(database_url: str, instance_id: uuid.UUID) -> None:
    """Make all the instance's events at least a minute old."""
    await sql(
        database_url,
        "UPDATE postgit.events SET at = least(at, now() - interval '1 minute') WHERE instance_id = %s",
        instance_id,
    )


async def kinds_of(store, instance_id: uuid.UUID) -> list[str]:
    return [row["kind"] for row in await store.events_since(instance_id, 0, limit=100_000)]


def retention(store, keep: int) -> Retention:
    return Retention(store, retention_seconds=None, interval=60, events_keep=keep)


async def test_the_middle_of_a_long_log_becomes_one_event_that_counts_it(service, store, database_url):
    await service.deploy("long", Node("Shout", id="a", text="x").to_json())
    (long, _), (short, _) = await service.start("long", {}), await service.start("long", {})
    await add_events(database_url, long["id"], ["step_started", "step_completed"] * 150)
    await add_events(database_url, long["id"], ["step_interrupted"])  # kept, wherever it is
    await add_events(database_url, long["id"], ["step_completed"] * 50)
    await add_events(database_url, short["id"], ["step_completed"] * 10)
    before = await kinds_of(store, long["id"])
    assert len(before) == 1 + 300 + 1 + 50

    # 50 kept (5 first, the compaction's own, 44 latest) and the interruption
    assert await retention(store, keep=50).compact_events() == len(before) - 51

    after = await kinds_of(store, long["id"])
    # its first tenth, the compaction's own event, the interruption, then its latest events
    assert after[:5] == before[:5] and after[5] == "events_compacted"
    assert after[6] == "step_interrupted" and after[7:] == before[-44:]
    assert len(after) == 51
    rows = await store.events_since(long["id"], 0, limit=100)
    marker = rows[5]["data"]
    assert marker["events"] == len(before) - 50
    assert marker["kinds"] == {"step_started": 148, "step_completed": len(before) - 50 - 148}
    assert marker["from"] <= marker["to"]
    assert [row["id"] for row in rows] == sorted(row["id"] for row in rows)
    assert len(await kinds_of(store, short["id"])) == 11, "an instance under the cap is left alone"
    assert [row["kind"] for row in await store.list_interruptions(long["id"])] == ["step_interrupted"]

    # a later pass adds to the same event, and a pass with nothing new removes nothing
    await add_events(database_url, long["id"], ["step_completed"] * 20)
    assert await retention(store, keep=50).compact_events() == 20
    rows = await store.events_since(long["id"], 0, limit=100)
    assert len(rows) == 51 and [row["kind"] for row in rows].count("events_compacted") == 1
    assert rows[5]["data"]["events"] == len(before) - 50 + 20
    assert rows[5]["data"]["from"] == marker["from"]
    assert await retention(store, keep=50).compact_events() == 0
    assert await retention(store, keep=None).compact_events() == 0


async def test_another_process_holding_the_lock_stops_the_pass_and_the_next_goes_on(service, store, database_url):
    await service.deploy("long", Node("Shout", id="a", text="x").to_json())
    (row, _) = await service.start("long", {})
    await add_events(database_url, row["id"], ["step_completed"] * 100)
    async with await psycopg.AsyncConnection.connect(database_url) as holder:
        await holder.execute("SELECT pg_advisory_xact_lock(%s)", [RETENTION_LOCK_ID])
        assert await retention(store, keep=20).compact_events() == 0
        assert len(await kinds_of(store, row["id"])) == 101
    assert await retention(store, keep=20).compact_events() == 81
    assert len(await kinds_of(store, row["id"])) == 20


async def test_a_compacted_end_of_a_step_is_no_interruption_when_a_lease_expires(service, store, database_url):
    await service.deploy("long", Node("Shout", id="a", text="x").to_json())
    (row, _) = await service.start("long", {})
    instance_id = row["id"]
    # step 'a' started among the first events and ended among those the pass removes
    await add_events(database_url, instance_id, ["step_started"], node_id="a")
    await add_events(database_url, instance_id, ["step_completed"], node_id="a")
    await add_events(database_url, instance_id, ["step_completed"] * 100, node_id="b")
    assert await retention(store, keep=20).compact_events() > 0
    kinds = await kinds_of(store, instance_id)
    assert kinds[:3] == ["instance_created", "step_started", "events_compacted"]

    # its worker stops: the lease expires, and another worker claims it
    await sql(
        database_url,
        "UPDATE postgit.instances SET status = 'running', lease_owner = 'gone', lease_expires_at = now() - interval"
        " '1 second', run_at = now() - interval '1 second' WHERE id = %s",
        instance_id,
    )
    claimed = await store.claim_instances(worker_id="next", node_types=["Shout"], limit=10, lease_seconds=30)
    assert [claim["id"] for claim in claimed] == [instance_id]
    assert [row["kind"] for row in await store.list_interruptions(instance_id)] == ["lease_expired"]


async def test_a_long_loop_keeps_its_steps_and_the_start_and_end_of_its_log(service, store, registry, database_url):
    flow = Sequence(
        id="root",
        children=[ForEach(id="loop", items="{{ input.lines }}", body=Node("Noop", id="item"), concurrency=50)],
    )
    await service.deploy("loop", flow.to_json())
    (row, _) = await service.start("loop", {"lines": list(range(300))})
    async with in_process_worker(store, registry, database_url, events_keep=40) as worker:
        await wait_finished(store, row["id"], timeout=60)
        await age_events(database_url, row["id"])
        assert len(await kinds_of(store, row["id"])) > 300
        await worker.retention.compact_events()  # the worker's own pass, with its POSTGIT_EVENTS_KEEP

    kinds = await kinds_of(store, row["id"])
    assert len(kinds) == 40
    assert kinds[0] == "instance_created" and kinds[4] == "events_compacted" and kinds[-1] == "instance_completed"
    detail = await service.get_instance(row["id"])
    assert detail["status"] == "completed" and detail["steps_total"] == 300
    assert detail["state"]["input"]["lines"] == list(range(300))


async def test_events_of_the_last_seconds_wait_for_the_next_pass(service, store, database_url):
    await service.deploy("long", Node("Shout", id="a", text="x").to_json())
    (row, _) = await service.start("long", {})
    await sql(
        database_url,
        "INSERT INTO postgit.events (instance_id, kind) SELECT %s, 'step_completed' FROM generate_series(1, 50)",
        row["id"],
    )
    assert await retention(store, keep=20).compact_events() == 0  # written just now: a transaction may still write
    assert len(await kinds_of(store, row["id"])) == 51
    await age_events(database_url, row["id"])
    assert await retention(store, keep=20).compact_events() == 31


async def test_a_pass_reads_window_after_window_and_remembers_where_it_stopped(
    service, store, database_url, monkeypatch
):
    monkeypatch.setattr(retention_module, "SCAN_WINDOW", 7)
    monkeypatch.setattr(retention_module, "SCAN_WINDOWS_PER_PASS", 1)
    await service.deploy("long", Node("Shout", id="a", text="x").to_json())
    ids = [(await service.start("long", {}))[0]["id"] for _ in range(3)]
    for instance_id in ids:
        await add_events(database_url, instance_id, ["step_completed"] * 29)
    before = await store.events_mark()
    # one window of 7 events a pass: the first meets every instance (their creations come first) and caps it
    assert await retention(store, keep=10).compact_events() == 60
    assert [len(await kinds_of(store, i)) for i in ids] == [10, 10, 10]
    last = max([row["id"] for i in ids for row in await store.events_since(i, 0)])
    assert before < await store.events_mark() < last
    # the next passes go on from there, window by window, to the end
    for _ in range(5):
        assert await retention(store, keep=10).compact_events() == 0
    assert await store.events_mark() == last
