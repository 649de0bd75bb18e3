"""``pst schedule ...`` against a real server and worker: create, ls, show, pause, resume, trigger, backfill, rm."""

from __future__ import annotations

import pytest

from tests.cli.conftest import assert_error, shout, write_json
from tests.support.waiting import wait_for_sync


@pytest.fixture
def deployed(pst, tmp_path):
    pst.ok("deploy", str(write_json(tmp_path, "greet.json", shout())), "greet")
    return pst


def test_create_ls_show_pause_resume_rm(deployed):
    pst = deployed
    created = pst.ok(
        "schedule", "create", "nightly", "--workflow", "greet", "--cron", "0 3 * * *", "--timezone",
        "Europe/Paris", "--input", '{"who": "ops"}', "--overlap", "buffer_one", "--catchup-window", "10m",
    )  # fmt: skip
    assert "Created schedule nightly" in created.stdout
    assert "Next fire times" in created.stdout
    assert "0 3 * * * (Europe/Paris)" in created.stdout

    listed = pst.ok("schedule", "ls")
    assert "nightly" in listed.stdout and "buffer_one" in listed.stdout and "NEXT FIRE" in listed.stdout
    [row] = pst.ok("schedule", "ls", "--json").json()
    assert row["next_fire_at"] and row["catchup_window"] == 600 and row["input"] == {"who": "ops"}

    assert "paused" in pst.ok("schedule", "pause", "nightly").stdout
    assert pst.ok("schedule", "ls", "--json").json()[0]["next_fire_at"] is None
    assert pst.ok("schedule", "resume", "nightly", "--json").json()["next_fire_at"] == row["next_fire_at"]
    shown = pst.ok("schedule", "show", "nightly", "--json").json()
    assert len(shown["upcoming"]) == 5

    assert "Deleted schedule nightly" in pst.ok("schedule", "rm", "nightly").stdout
    assert_error(pst("schedule", "show", "nightly"), "schedule 'nightly' does not exist")
    assert_error(pst("schedule", "rm", "nightly"), "schedule 'nightly' does not exist")


def test_trigger_and_backfill_start_instances_the_worker_runs(deployed, worker):
    pst = deployed
    pst.ok("schedule", "create", "hourly", "--workflow", "greet", "--cron", "0 * * * *", "--paused")
    instance_id = pst.ok("schedule", "trigger", "hourly").stdout.strip()
    wait_for_sync(
        lambda: pst.ok("status", instance_id, "--json").json()["status"] == "completed",
        timeout=30,
        interval=0.2,
        what="the triggered instance to complete",
    )
    backfilled = pst.ok("schedule", "backfill", "hourly", "--from", "2026-01-01T00:00:00", "--to", "2026-01-01T02:00Z")
    assert "3 fire time(s), 3 started, 0 fired before, 0 failed" in backfilled.stdout
    times = ["--from", "2026-01-01T02:00Z", "--to", "2026-01-01T03:00Z"]
    again = pst.ok("schedule", "backfill", "hourly", *times, "--json")
    assert (again.json()["started"], again.json()["existing"]) == (1, 1)

    shown = pst.ok("schedule", "show", "hourly")
    assert "Latest fires" in shown.stdout and "backfill" in shown.stdout and "trigger" in shown.stdout
    assert len(pst.ok("i", "ls", "--workflow", "greet", "--json").json()) == 5


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--cron", "61 * * * *"], ["cron: '61 * * * *' does not parse"]),
        (["--cron", "* * * * *", "--timezone", "Mars/Olympus_Mons"], ["timezone: 'Mars/Olympus_Mons'"]),
        (["--cron", "* * * * *", "--workflow", "nope"], ["workflow: 'nope' is not deployed"]),
        (["--cron", "* * * * *", "--overlap", "sometimes"], ["--overlap", "sometimes"]),
        (["--cron", "* * * * *", "--catchup-window", "-5s"], ["--catchup-window: '-5s' is not a duration"]),
        (["--cron", "* * * * *", "--input", "{nope"], ["--input is not valid JSON"]),
    ],
)
def test_bad_input_is_one_line_a_non_zero_exit_and_nothing_written(deployed, args, fragments):
    pst = deployed
    command = ["schedule", "create", "s", "--workflow", "greet", *args]
    if "--workflow" in args:
        command = ["schedule", "create", "s", *args]
    assert_error(pst(*command), *fragments)
    assert pst.ok("schedule", "ls", "--json").json() == []


def test_bad_backfill_times_are_refused(deployed):
    pst = deployed
    pst.ok("schedule", "create", "hourly", "--workflow", "greet", "--cron", "0 * * * *", "--paused")
    assert_error(pst("schedule", "backfill", "hourly", "--from", "yesterday", "--to", "2026-01-01T00:00Z"), "--from")
    assert_error(
        pst("schedule", "backfill", "hourly", "--from", "2026-01-02T00:00Z", "--to", "2026-01-01T00:00Z"),
        "to: is before from",
    )
    assert pst.ok("i", "ls", "--json").json() == []
