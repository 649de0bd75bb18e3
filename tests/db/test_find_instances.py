"""``Store.find_instances``: the console's instance list, filtered, counted per status, paged by keyset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from postgit import Node
from postgit.starts import StartItem


async def started(service, workflow: str, count: int, key_prefix: str | None = None) -> list:
    items = [StartItem(None, f"{key_prefix}{n}" if key_prefix else None) for n in range(count)]
    return [outcome.id for outcome in await service.start_many(workflow, items)]


async def test_pages_by_keyset_newest_first_without_gaps_or_repeats(service, store):
    await service.deploy("a", Node("Shout", id="s", text="x").to_json())
    ids = await started(service, "a", 23)
    seen, after = [], None
    while True:
        counts, rows = await store.find_instances(workflow="a", after=after, limit=10)
        assert counts == {"pending": 23}
        if not rows:
            break
        seen += [row["id"] for row in rows]
        after = (rows[-1]["created_at"], rows[-1]["id"])
    assert sorted(seen) == sorted(ids) and len(seen) == 23
    keys = [(row["created_at"], row["id"]) for row in (await store.find_instances(workflow="a", limit=50))[1]]
    assert keys == sorted(keys, reverse=True)


async def test_filters_combine_and_counts_ignore_the_status_filter(service, store):
    await service.deploy("a", Node("Shout", id="s", text="x").to_json())
    await service.deploy("b", Node("Shout", id="s", text="x").to_json())
    a_ids = await started(service, "a", 3, key_prefix="ka")
    b_ids = await started(service, "b", 2)
    await service.cancel(a_ids[0])

    counts, rows = await store.find_instances(workflow="a", status="cancelled")
    assert counts == {"pending": 2, "cancelled": 1}
    assert [row["id"] for row in rows] == [a_ids[0]]
    counts, rows = await store.find_instances(idempotency_key="ka2")
    assert [row["id"] for row in rows] == [a_ids[2]] and counts == {"pending": 1}
    counts, rows = await store.find_instances(instance_id=b_ids[1])
    assert [row["id"] for row in rows] == [b_ids[1]]
    now = datetime.now(UTC)
    counts, rows = await store.find_instances(created_from=now + timedelta(hours=1))
    assert counts == {} and rows == []
    counts, rows = await store.find_instances(
        created_from=now - timedelta(hours=1), created_to=now + timedelta(hours=1)
    )
    assert sum(counts.values()) == 5 and len(rows) == 5


async def test_live_workers_come_with_the_instances_they_hold(service, store):
    await service.deploy("a", Node("Shout", id="s", text="x").to_json())
    await started(service, "a", 3)
    await store.register_worker("busy", ["Shout"])
    await store.register_worker("idle", ["Shout"])
    claimed = await store.claim_instances(worker_id="busy", node_types=["Shout"], limit=2, lease_seconds=30)
    assert len(claimed) == 2
    workers = {row["id"]: row for row in await store.list_live_workers_in_flight(30)}
    assert workers["busy"]["in_flight"] == 2 and workers["idle"]["in_flight"] == 0
    assert workers["busy"]["node_types"] == ["Shout"]


async def test_counts_stop_at_the_cap_and_a_workflow_counts_its_newest_instances(service, store):
    await service.deploy("a", Node("Shout", id="s", text="x").to_json())
    await started(service, "a", 5)
    counts, rows = await store.find_instances(count_cap=3, limit=2)
    assert counts == {"pending": 4} and not counts.partial  # 4: more than 3
    assert len(rows) == 2
    counts, _ = await store.find_instances(workflow="a", count_cap=3)
    assert counts.partial and sum(counts.values()) == 4  # the workflow's newest 4, and it has more
    counts, _ = await store.find_instances(workflow="a", count_cap=10)
    assert counts == {"pending": 5} and not counts.partial
