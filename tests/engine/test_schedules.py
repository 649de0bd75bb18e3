"""Schedules fired by real worker and server processes: each nominal time once, catch-up, overlap policies."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from postgit import Sleep
from postgit.schedules import ScheduleService
from tests.server.conftest import shout
from tests.support.processes import running_workers
from tests.support.server import running_server
from tests.support.waiting import wait_for

EVERY_SECOND = "* * * * * *"


async def query(database_url: str, sql: str, *params: Any) -> list[dict[str, Any]]:
    async with await psycopg.AsyncConnection.connect(database_url, row_factory=dict_row) as conn:
        cursor = await conn.execute(sql, params)  # type: ignore[arg-type]
        return await cursor.fetchall()


async def fires(database_url: str, schedule: str) -> list[dict[str, Any]]:
    return await query(
        database_url,
        "SELECT f.*, i.status, i.created_at AS started_at, i.finished_at FROM postgit.schedule_fires f"
        " LEFT JOIN postgit.instances i ON i.id = f.instance_id WHERE f.schedule = %s ORDER BY f.nominal_at",
        schedule,
    )


async def schedule_instances(database_url: str, schedule: str) -> list[dict[str, Any]]:
    return await query(
        database_url,
        "SELECT id, idempotency_key, status, created_at, finished_at FROM postgit.instances"
        " WHERE idempotency_key LIKE %s ORDER BY idempotency_key",
        f"schedule:{schedule}:%",
    )


def nominal(key: str) -> datetime:
    """The nominal time in a schedule's idempotency key, ``schedule:NAME:2026-12-03T10:00:00Z``."""
    return datetime.fromisoformat(key.split(":", 2)[2])


def seconds_apart(times: list[datetime]) -> list[float]:
    return [(b - a).total_seconds() for a, b in itertools.pairwise(times)]


async def test_two_servers_and_two_workers_fire_each_nominal_time_once_never_early(service, database_url, tmp_path):
    await service.deploy("tick", shout())
    names = [f"tick-{n}" for n in range(5)]

    with (
        running_server(database_url, tmp_path) as (_, first_url),
        running_server(database_url, tmp_path) as (_, second_url),
        running_workers(database_url, tmp_path, count=2),
    ):
        async with httpx.AsyncClient(base_url=first_url) as first, httpx.AsyncClient(base_url=second_url) as second:
            for name in names:
                body = {"name": name, "workflow": "tick", "cron": EVERY_SECOND, "overlap": "allow_all"}
                assert (await first.post("/schedules", json=body)).status_code == 201

            async def fired_enough() -> bool:
                for name in names:
                    if len(await schedule_instances(database_url, name)) < 6:
                        return False
                return True

            await wait_for(fired_enough, timeout=60, interval=0.25, what="six fires of every schedule")
            for name in names:
                assert (await second.post(f"/schedules/{name}/pause")).status_code == 200

    for name in names:
        instances = await schedule_instances(database_url, name)
        times = sorted(nominal(row["idempotency_key"]) for row in instances)
        assert seconds_apart(times) == [1.0] * (len(times) - 1), f"{name}: a nominal time was skipped: {times}"
        # a pass claims its schedules a little ahead of their time, and each start waits for its time
        early = [row for row in instances if row["created_at"] < nominal(row["idempotency_key"])]
        assert not early, f"{name}: started before its nominal time: {early}"
        records = await fires(database_url, name)
        assert [r["outcome"] for r in records] == ["started"] * len(records), records
        assert sorted(r["nominal_at"] for r in records) == times
        assert len({r["instance_id"] for r in records}) == len(records) == len(instances)


async def test_a_worker_killed_while_firing_loses_and_repeats_no_nominal_time(service, database_url, tmp_path):
    await service.deploy("tick", shout())
    schedules = ScheduleService(service)

    async def fired(count: int) -> bool:
        return len(await schedule_instances(database_url, "tick")) >= count

    with running_workers(database_url, tmp_path, count=2) as workers:
        await schedules.create("tick", workflow="tick", cron=EVERY_SECOND, overlap="allow_all", catchup_window=60)
        await wait_for(lambda: fired(3), timeout=30, interval=0.1, what="three fires")
        workers[0].kill()  # SIGKILL, mid-pass or between passes
        await wait_for(
            lambda: fired(6),
            timeout=90,
            interval=0.1,
            what="three more fires (a pass the kill cut short holds its claim for 10s)",
        )
        workers[1].kill()

        async def recorded_after_the_kills() -> bool:
            # a pass killed between its starts and its record leaves them to a later pass, once its claim lapses
            started = {r["nominal_at"] for r in await fires(database_url, "tick") if r["outcome"] == "started"}
            times = {nominal(row["idempotency_key"]) for row in await schedule_instances(database_url, "tick")}
            return len(times) >= 9 and times <= started

        with running_workers(database_url, tmp_path, count=1):
            await wait_for(recorded_after_the_kills, timeout=90, interval=0.1, what="fires after both were killed")
            await schedules.pause("tick")

    times = sorted(nominal(row["idempotency_key"]) for row in await schedule_instances(database_url, "tick"))
    assert seconds_apart(times) == [1.0] * (len(times) - 1), times
    records = await fires(database_url, "tick")
    assert {r["outcome"] for r in records} == {"started"}
    assert sorted(r["nominal_at"] for r in records) == times


async def test_after_an_outage_fires_within_the_catchup_window_run_and_older_ones_are_missed(
    service, database_url, tmp_path
):
    await service.deploy("tick", shout())
    schedules = ScheduleService(service)
    created = await schedules.create("tick", workflow="tick", cron=EVERY_SECOND, overlap="allow_all", catchup_window=3)
    first = created["next_fire_at"]

    async def outage_long_enough() -> bool:  # nothing runs: no worker, no server
        [row] = await query(database_url, "SELECT now() AS now")
        return row["now"] > first + timedelta(seconds=7)

    await wait_for(outage_long_enough, timeout=20, interval=0.2, what="seven seconds without any process")

    with running_workers(database_url, tmp_path, count=1):

        async def caught_up() -> list[dict[str, Any]]:
            records = await fires(database_url, "tick")
            return records if any(r["outcome"] == "missed" for r in records) and len(records) >= 5 else []

        await wait_for(caught_up, timeout=30, interval=0.2, what="the catch-up")
        await schedules.pause("tick")

    records = await fires(database_url, "tick")
    [missed] = [r for r in records if r["outcome"] == "missed"]
    assert missed["nominal_at"] == first
    assert missed["fires"] >= 4
    assert (missed["recorded_at"] - missed["last_nominal_at"]).total_seconds() > 3
    assert "older than the catch-up window (3s)" in missed["detail"]
    started = [r for r in records if r["outcome"] == "started"]
    assert started and {r["outcome"] for r in records} == {"missed", "started"}
    # (the started ones were decided within the window at the pass's time, which a record does not keep: its
    # recorded_at is when the pass wrote, after starting the instances)
    # together they cover every nominal time, each once: the missed range, then the started ones second by second
    times = [missed["last_nominal_at"]] + [r["nominal_at"] for r in started]
    assert seconds_apart(times) == [1.0] * (len(times) - 1)
    assert missed["fires"] == (missed["last_nominal_at"] - first).total_seconds() + 1


def overlapping(instances: list[dict[str, Any]]) -> bool:
    """Whether two of the instances ran at the same time."""
    never = datetime.max.replace(tzinfo=UTC)
    spans = sorted((row["created_at"], row["finished_at"] or never) for row in instances)
    return any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))


@pytest.mark.parametrize("policy", ["skip", "buffer_one", "buffer_all", "cancel_other", "terminate_other", "allow_all"])
async def test_overlap_policies(policy, service, database_url, tmp_path):
    await service.deploy("nap", Sleep(id="nap", seconds=2.5).to_json())
    schedules = ScheduleService(service)

    with running_workers(database_url, tmp_path, count=1):
        await schedules.create("nap", workflow="nap", cron=EVERY_SECOND, overlap=policy)

        async def enough() -> bool:
            records = await fires(database_url, "nap")
            finished = any(r["outcome"] == "started" and r["status"] in ("completed", "cancelled") for r in records)
            # a buffered fire starts on the scheduler's first pass after the previous instance finished
            buffered = policy != "buffer_one" or any("buffered fire" in (r["detail"] or "") for r in records)
            return sum(r["fires"] for r in records) >= 8 and finished and buffered

        await wait_for(enough, timeout=60, interval=0.25, what="eight fires")
        await schedules.pause("nap")

    records = await fires(database_url, "nap")
    outcomes = {r["outcome"] for r in records}
    instances = await schedule_instances(database_url, "nap")
    statuses = {row["status"] for row in instances}
    started = [r for r in records if r["outcome"] == "started"]
    assert len(started) == len(instances)
    if policy == "skip":
        assert outcomes == {"started", "skipped"}, records
        assert not overlapping(instances)
        assert all("still running (overlap: skip)" in r["detail"] for r in records if r["outcome"] == "skipped")
    elif policy == "buffer_one":
        assert not overlapping(instances)
        assert "skipped" in outcomes  # the buffer holds one fire; the others are skipped
        late = [r for r in started if r["detail"] and "buffered fire" in r["detail"]]
        assert late, records
        for record in late:  # started once the previous finished, after its nominal time
            assert (record["started_at"] - record["nominal_at"]).total_seconds() > 1
    elif policy == "buffer_all":
        assert not overlapping(instances)
        assert "skipped" not in outcomes
        assert "buffered" in outcomes
        [row] = await query(database_url, "SELECT cardinality(buffered) AS n FROM postgit.schedules")
        assert row["n"] >= 2  # every fire waits its turn
    elif policy in ("cancel_other", "terminate_other"):
        assert "cancelled" in statuses
        verb = "terminated" if policy == "terminate_other" else "cancelled"
        assert any(r["detail"] and r["detail"].startswith(f"{verb} the previous instance") for r in started)
        skipped = [r for r in records if r["outcome"] == "skipped"]
        assert all("a later fire was due" in r["detail"] for r in skipped), skipped
    else:
        assert outcomes == {"started"}
        assert overlapping(instances)
        times = sorted(nominal(row["idempotency_key"]) for row in instances)
        assert seconds_apart(times) == [1.0] * (len(times) - 1)
