"""``pst run --at/--delay`` and ``pst i retry|pause|resume|cancel``, one instance or in bulk, against real processes."""

from __future__ import annotations

from pathlib import Path

import psycopg

from tests.cli.conftest import Pst, assert_error, hit, sequence, write_json
from tests.cli.test_cli_commands import wait_status


def test_a_delayed_run_is_pending_with_its_start_time_and_can_be_cancelled(pst: Pst, tmp_path: Path):
    pst.ok("deploy", str(write_json(tmp_path, "later.json", sequence(hit("a", "http://127.0.0.1:9/never")))))
    started = pst.ok("run", "later", "--delay", "1h", "--json").json()
    assert started["status"] == "pending"
    shown = pst.ok("status", started["id"], "--json").json()
    assert shown["status"] == "pending" and shown["wait_reason"].startswith("starts at ")
    assert "starts at" in pst.ok("status", started["id"]).stdout
    at = pst.ok("run", "later", "--at", "2999-01-01T09:00:00+01:00", "--json").json()
    assert pst.ok("status", at["id"], "--json").json()["wait_reason"] == "starts at 2999-01-01T08:00:00+00:00"
    pst.ok("i", "cancel", started["id"])
    assert pst.ok("status", started["id"], "--json").json()["status"] == "cancelled"

    assert_error(pst("run", "later", "--delay", "5x"), "--delay", "not a duration", exit_code=2)
    assert_error(pst("run", "later", "--at", "2999-01-01T09:00:00"), "--at", "no UTC offset", exit_code=2)
    assert_error(pst("run", "later", "--at", "tomorrow"), "--at", "not an ISO 8601 time", exit_code=2)
    assert_error(pst("run", "later", "--at", "2999-01-01T09:00:00Z", "--delay", "1m"), "--at and --delay")


def test_retry_a_failed_instance_on_the_fixed_version(pst: Pst, worker, tmp_path: Path, http_server):
    def flow(url: str) -> dict:
        return sequence(hit("a", f"{http_server.url}/ok/a"), hit("b", url, retry={"maxAttempts": 1}))

    path = write_json(tmp_path, "fix.json", flow(f"{http_server.url}/status/500"))
    pst.ok("deploy", str(path))
    instance_id = pst.ok("run", "fix", "--json").json()["id"]
    assert wait_status(pst, instance_id, "failed", "completed")["status"] == "failed"

    assert_error(pst("i", "retry", instance_id, "--from", "nope"), "from: node 'nope' does not exist")
    assert_error(pst("i", "pause", instance_id), "only a pending, running or waiting instance can be paused")
    assert_error(pst("i", "retry", instance_id, "--from", "a", "--workflow", "fix"), "--from", exit_code=2)

    path.write_text(write_json(tmp_path, "v2.json", flow(f"{http_server.url}/ok/b")).read_text(), encoding="utf-8")
    pst.ok("deploy", str(path))
    retried = pst.ok("i", "retry", instance_id, "--latest", "--json").json()
    assert retried["version"] == 2 and retried["retry"] == 1
    done = wait_status(pst, instance_id, "completed", "failed")
    assert done["status"] == "completed" and done["version"] == 2
    assert len(http_server.hits("/ok/a")) == 1, "the step completed before the failure is kept"
    assert_error(pst("i", "retry", instance_id), "is completed: only a failed or cancelled instance can be retried")


def test_bulk_pause_and_resume_ask_first_and_show_how_many(pst: Pst, tmp_path: Path):
    pst.ok("deploy", str(write_json(tmp_path, "many.json", sequence(hit("a", "http://127.0.0.1:9/never")))))
    ids = [pst.ok("run", "many", "--delay", "1h", "--json").json()["id"] for _ in range(2)]

    refused = pst("i", "pause", "--workflow", "many", "--status", "pending")
    assert refused.returncode != 0 and "pause will touch 2 of many's pending instances" in refused.stderr
    assert "not confirmed: nothing was done" in refused.stderr
    assert not any(pst.ok("status", i, "--json").json()["paused"] for i in ids)

    assert pst.ok("i", "pause", "--workflow", "many", "--status", "pending", "--yes").stdout.strip() == (
        "2 of 2 instances paused"
    )
    shown = pst.ok("status", ids[0], "--json").json()
    assert shown["paused"] is True and shown["status"] == "pending"
    assert "(paused)" in pst.ok("i", "ls", "--workflow", "many").stdout
    result = pst.ok("i", "resume", "--workflow", "many", "--status", "pending", "--yes", "--json").json()
    assert (result["matched"], result["done"]) == (2, 2)
    assert not pst.ok("status", ids[1], "--json").json()["paused"]

    assert_error(pst("i", "pause"), "give an instance ID, or --workflow W and --status S", exit_code=2)
    assert_error(pst("i", "retry", "--workflow", "many", "--status", "pending", "--yes"), "status: retry takes")


def test_run_with_a_priority_and_status_shows_a_concurrency_wait(pst: Pst, tmp_path: Path, database_url: str):
    flow = {"root": sequence(hit("a", "http://127.0.0.1:9/never")), "concurrency": {"key": "{{ input.c }}"}}
    pst.ok("deploy", str(write_json(tmp_path, "keyed.json", flow)))
    first = pst.ok("run", "keyed", "--input", '{"c": "acme"}', "--priority", "1", "--json").json()
    second = pst.ok("run", "keyed", "--input", '{"c": "acme"}', "--json").json()
    assert first["status"] == second["status"] == "pending"
    reason = "waiting for a concurrency slot of key acme (limit 1)"
    assert pst.ok("status", second["id"], "--json").json()["wait_reason"] == reason
    assert reason in pst.ok("status", second["id"]).stdout
    lines = tmp_path / "many.jsonl"
    lines.write_text('{"c": "x"}\n{"c": "y"}\n')
    pst.ok("run", "keyed", "--input", f"@{lines}", "--priority", "5")
    with psycopg.connect(database_url) as conn:
        priorities = [row[0] for row in conn.execute("SELECT priority FROM postgit.instances ORDER BY slot_seq")]
    assert priorities == [1, 3, 5, 5]

    assert_error(pst("run", "keyed", "--input", '{"c": "acme"}', "--priority", "0"), "--priority", "1 (first)")
    assert_error(pst("run", "keyed", "--input", '{"c": "acme"}', "--priority", "6"), "--priority", "5 (last)")
    assert_error(pst("run", "keyed", "--input", '{"d": 1}'), "concurrency.key: template failed to render")
