"""Every command against a real ``postgit-server`` (and a real ``postgit-worker`` where steps must run)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import Pst, assert_error, hit, sequence, shout, sleep, write_json
from tests.support.processes import running_workers
from tests.support.waiting import wait_for_sync

MISSING_ID = "00000000-0000-0000-0000-000000000000"


def wait_status(pst: Pst, instance_id: str, *statuses: str, timeout: float = 30) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        row = pst.ok("status", instance_id, "--json").json()
        return row if row["status"] in statuses else None

    return wait_for_sync(reached, timeout=timeout, interval=0.1, what=f"instance {instance_id} to be {statuses}")


# -- deploy and wf ls ------------------------------------------------------------------------------------------


def test_deploy_a_json_file_and_list_workflows(pst: Pst, tmp_path: Path):
    path = write_json(tmp_path, "greet.json", sequence(shout()))
    assert pst.ok("deploy", str(path)).stdout.strip() == "Deployed greet version 1"
    assert pst.ok("deploy", str(path)).stdout.strip() == "greet unchanged, version 1"

    path.write_text(json.dumps(sequence(shout(text="changed"))), encoding="utf-8")
    assert json.loads(pst.ok("deploy", str(path), "--json").stdout) == {
        "name": "greet",
        "version": 2,
        "created": True,
    }
    assert pst.ok("deploy", str(path), "other-name", "--json").json() == {
        "name": "other-name",
        "version": 1,
        "created": True,
    }

    rows = pst.ok("wf", "ls", "--json").json()
    assert isinstance(rows, list)
    by_name = {row["name"]: row for row in rows}
    assert set(by_name) == {"greet", "other-name"}
    assert by_name["greet"]["latest_version"] == 2

    table = pst.ok("wf", "ls").stdout.splitlines()
    assert table[0].split() == ["NAME", "LATEST", "VERSIONS", "UPDATED"]
    assert any(line.split()[:2] == ["greet", "2"] for line in table[1:])


def test_wf_ls_with_nothing_deployed(pst: Pst):
    assert pst.ok("wf", "ls", "--json").json() == []
    result = pst.ok("wf", "ls")
    assert result.stdout == ""
    assert "no workflows" in result.stderr


def test_deploy_a_python_file_with_the_sdk(pst: Pst, tmp_path: Path):
    path = tmp_path / "hello_flow.py"
    path.write_text(
        "from postgit import Node, Sequence, Sleep\n"
        "print('this module prints while it is imported')\n"
        "def workflow():\n"
        "    return Sequence(id='root', children=[Node('Shout', id='loud', text='hi'), Sleep(id='nap', seconds=1)])\n",
        encoding="utf-8",
    )
    result = pst.ok("deploy", str(path), "--json")
    assert result.json() == {"name": "hello_flow", "version": 1, "created": True}
    assert "this module prints" in result.stderr


def test_an_invalid_definition_names_the_node_and_the_field(pst: Pst, tmp_path: Path):
    definition = sequence(
        {"id": "loud", "type": "Shout", "params": {"text": "x", "exclamations": 99}},
        {"id": "mystery", "type": "NoSuchType", "params": {}},
    )
    path = write_json(tmp_path, "broken.json", definition)
    line = assert_error(pst("deploy", str(path)), "invalid definition: ", exit_code=1)
    assert "node 'loud', field 'params.exclamations'" in line
    assert "node 'mystery', field 'type'" in line
    assert "NoSuchType" in line
    assert pst.ok("wf", "ls", "--json").json() == []


@pytest.mark.parametrize("url", ["http://256.1.1.1/x", "http://[::1/x", "http://example.com:99999/x"])
def test_a_malformed_url_is_refused_naming_the_node_and_the_field(pst: Pst, tmp_path: Path, url: str):
    path = write_json(tmp_path, "bad_url.json", sequence(hit("call", url)))
    line = assert_error(pst("deploy", str(path)), "invalid definition: ", exit_code=1)
    assert "node 'call', field 'params.url'" in line
    assert pst.ok("wf", "ls", "--json").json() == []


def test_an_invalid_workflow_name_is_refused(pst: Pst, tmp_path: Path):
    path = write_json(tmp_path, "flow.json", sequence(shout()))
    assert_error(pst("deploy", str(path), "not a name!"), "invalid workflow name", "not a name!")


# -- not found -------------------------------------------------------------------------------------------------


def test_not_found_answers_carry_the_servers_detail(pst: Pst):
    assert_error(pst("status", MISSING_ID), f"instance {MISSING_ID} does not exist")
    assert_error(pst("status", "not-an-id", "--json"), "does not exist")
    assert_error(pst("run", "nosuch"), "workflow 'nosuch' does not exist")
    assert_error(pst("run", "nosuch", "--watch"), "workflow 'nosuch' does not exist")
    assert_error(pst("i", "cancel", MISSING_ID), f"instance {MISSING_ID} does not exist")


def test_odd_names_and_ids_stay_in_their_path_segment(pst: Pst):
    # Quoted, "../workflows" cannot turn into GET /workflows; the server answers 404 for the odd path.
    assert_error(pst("status", "../workflows"), "404")
    assert_error(pst("run", "a/b"), "404")


# -- run, status, i ls -----------------------------------------------------------------------------------------


def test_run_status_and_list(pst: Pst, tmp_path: Path, worker):
    greet = sequence(shout(text="{{ input.name }}", assignTo="$.out"))
    pst.ok("deploy", str(write_json(tmp_path, "greet.json", greet)))
    pst.ok("deploy", str(write_json(tmp_path, "other.json", sequence(shout()))))

    first = pst.ok("run", "greet", "--input", '{"name": "ada"}').stdout.strip()
    uuid.UUID(first)  # the id alone on stdout
    input_file = write_json(tmp_path, "input.json", {"name": "bob"})
    started = pst.ok("run", "greet", "--input", f"@{input_file}", "--json").json()
    assert set(started) >= {"id", "status"}
    second = started["id"]
    third = pst.ok("run", "other").stdout.strip()

    row = wait_status(pst, first, "completed")
    assert row["workflow"] == "greet"
    assert row["version"] == 1
    assert row["state"] == {"input": {"name": "ada"}, "out": {"text": "ADA!"}}
    assert [step["node_id"] for step in row["steps"]] == ["shout"]
    assert {"id", "workflow", "version", "status", "state", "steps"} <= set(row)
    assert wait_status(pst, second, "completed")["state"]["out"] == {"text": "BOB!"}
    wait_status(pst, third, "completed")

    text = pst.ok("status", first).stdout
    assert first in text
    assert "greet@1" in text
    assert "ADA!" in text
    assert "completed" in text
    step_lines = [line.split() for line in text.splitlines()]
    assert ["RUN", "ATTEMPT", "STATUS", "DURATION", "ERROR"] in step_lines
    assert any(line[:3] == ["shout", "1", "completed"] for line in step_lines)

    items = pst.ok("i", "ls", "--json").json()
    assert [item["id"] for item in items] == [third, second, first]  # newest first
    assert [item["id"] for item in pst.ok("i", "ls", "--workflow", "greet", "--json").json()] == [second, first]
    assert len(pst.ok("i", "ls", "--status", "completed", "--json").json()) == 3
    assert pst.ok("i", "ls", "--status", "failed", "--json").json() == []

    limited = pst.ok("i", "ls", "--limit", "2")
    assert [line.split()[0] for line in limited.stdout.splitlines()[1:]] == [third, second]
    assert "pst i ls --offset 2" in limited.stderr
    assert [item["id"] for item in pst.ok("i", "ls", "--offset", "2", "--json").json()] == [first]

    table = pst.ok("i", "ls").stdout.splitlines()
    assert table[0].split() == ["ID", "WORKFLOW", "VERSION", "STATUS", "NODE", "CREATED"]
    assert table[1].split()[:4] == [third, "other", "1", "completed"]


def test_an_idempotency_key_starts_one_instance(pst: Pst, tmp_path: Path):
    pst.ok("deploy", str(write_json(tmp_path, "once.json", sequence(shout()))))
    first = pst.ok("run", "once", "--idempotency-key", "order-42").stdout.strip()
    again = pst.ok("run", "once", "--idempotency-key", "order-42")
    assert again.stdout.strip() == first
    assert "already exists" in again.stderr
    assert pst.ok("run", "once", "--idempotency-key", "order-42", "--json").json()["id"] == first
    assert len(pst.ok("i", "ls", "--json").json()) == 1


def test_status_of_a_pending_instance_says_why_it_waits(pst: Pst, tmp_path: Path):
    pst.ok("deploy", str(write_json(tmp_path, "idle.json", sequence(shout()))))
    instance_id = pst.ok("run", "idle").stdout.strip()
    text = pst.ok("status", instance_id).stdout
    assert "pending" in text
    assert "no worker is running" in text
    assert "shout (Shout), attempt 1" in text


def test_cancel(pst: Pst, tmp_path: Path):
    pst.ok("deploy", str(write_json(tmp_path, "slow.json", sequence(shout(), sleep(seconds=60)))))
    instance_id = pst.ok("run", "slow").stdout.strip()
    assert pst.ok("i", "cancel", instance_id).stdout.strip() == f"Cancelled {instance_id}"
    assert pst.ok("status", instance_id, "--json").json()["status"] == "cancelled"
    assert_error(pst("i", "cancel", instance_id), f"instance {instance_id} is already cancelled", exit_code=1)


def test_cancel_json_and_a_completed_instance(pst: Pst, tmp_path: Path, worker):
    pst.ok("deploy", str(write_json(tmp_path, "quick.json", sequence(shout()))))
    slow = pst.ok("run", "quick", "--json").json()["id"]
    wait_status(pst, slow, "completed")
    assert_error(pst("i", "cancel", slow, "--json"), f"instance {slow} is already completed", exit_code=1)


# -- outbox and plugins ----------------------------------------------------------------------------------------


def test_outbox_lists_mail_parked_without_smtp(pst: Pst, tmp_path: Path, worker):
    assert pst.ok("outbox", "ls", "--json").json() == []
    assert "empty" in pst.ok("outbox", "ls").stderr
    mail = {
        "id": "mail",
        "type": "SendEmail",
        "params": {"to": "ops@example.com", "subject": "Report {{ input.day }}", "body": "all good"},
    }
    pst.ok("deploy", str(write_json(tmp_path, "report.json", sequence(mail))))
    instance_id = pst.ok("run", "report", "--input", '{"day": "monday"}').stdout.strip()
    wait_status(pst, instance_id, "completed")

    rows = pst.ok("outbox", "ls", "--json").json()
    assert len(rows) == 1
    assert rows[0]["message"]["subject"] == "Report monday"
    assert rows[0]["message"]["to"] == ["ops@example.com"]
    table = pst.ok("outbox", "ls").stdout.splitlines()
    assert table[0].split() == ["ID", "TO", "SUBJECT", "INSTANCE", "CREATED"]
    assert "ops@example.com" in table[1]
    assert "Report monday" in table[1]
    assert instance_id in table[1]


def test_plugins_ls_without_workers_says_server_only(pst: Pst):
    rows = pst.ok("plugins", "ls", "--json").json()
    by_name = {row["name"]: row for row in rows}
    assert {"HitEndpoint", "Sleep", "SendEmail", "Shout"} <= set(by_name)
    assert by_name["Shout"]["package"] == "postgit-example-plugin"
    assert by_name["Shout"]["version"] == "0.1.0"
    assert by_name["Shout"]["workers"] == []
    shout_line = next(line for line in pst.ok("plugins", "ls").stdout.splitlines() if line.startswith("Shout "))
    assert "postgit-example-plugin" in shout_line
    assert "Upper-case a string" in shout_line
    assert shout_line.split()[-3:] == ["server", "only", "-"]  # WORKERS, then QUEUES: no worker, no queue


def test_workers_ls_and_plugins_ls_show_the_queues_workers_serve(pst: Pst, database_url: str, tmp_path: Path):
    assert pst.ok("workers", "ls", "--json").json() == []
    assert "no live worker" in pst.ok("workers", "ls").stderr
    with running_workers(database_url, tmp_path, count=1, POSTGIT_QUEUES="gpu,default") as (gpu,):
        with running_workers(database_url, tmp_path, count=1) as (anything,):

            def both_listed() -> list[dict] | None:
                rows = pst.ok("workers", "ls", "--json").json()
                return rows if len(rows) == 2 else None

            rows = wait_for_sync(both_listed, what="both workers to register")
            by_pid = {row["pid"]: row for row in rows}
            assert by_pid[gpu.pid]["queues"] == ["default", "gpu"]
            assert by_pid[anything.pid]["queues"] is None
            table = pst.ok("workers", "ls").stdout.splitlines()
            assert table[0].split() == ["ID", "HOST", "QUEUES", "NODE", "TYPES", "HEARTBEAT"]
            line = next(line for line in table if by_pid[gpu.pid]["id"] in line)
            assert "default, gpu" in line and "Shout" in line
            line = next(line for line in table if by_pid[anything.pid]["id"] in line)
            assert "every queue" in line
            shout = next(row for row in pst.ok("plugins", "ls", "--json").json() if row["name"] == "Shout")
            assert shout["worker_queues"] == {
                by_pid[gpu.pid]["id"]: ["default", "gpu"],
                by_pid[anything.pid]["id"]: None,
            }
            shout_line = next(line for line in pst.ok("plugins", "ls").stdout.splitlines() if line.startswith("Shout "))
            assert shout_line.rstrip().endswith("every queue")
        # with the worker that serves every queue gone, the queues of the one left
        wait_for_sync(lambda: len(pst.ok("workers", "ls", "--json").json()) == 1, what="the second worker to go")
        shout_line = next(line for line in pst.ok("plugins", "ls").stdout.splitlines() if line.startswith("Shout "))
        assert shout_line.rstrip().endswith("default, gpu")


def test_rm_deletes_a_finished_instance_and_refuses_an_unfinished_one(pst: Pst, tmp_path: Path):
    pst.ok("deploy", str(write_json(tmp_path, "slow.json", sequence(shout(), sleep(seconds=60)))))
    instance_id = pst.ok("run", "slow").stdout.strip()
    assert_error(
        pst("i", "rm", instance_id),
        f"instance {instance_id} is pending: cancel it first, or wait until it finishes",
        exit_code=1,
    )
    pst.ok("i", "cancel", instance_id)
    assert pst.ok("i", "rm", instance_id).stdout.strip() == f"Deleted {instance_id}"
    assert_error(pst("status", instance_id), f"instance {instance_id} does not exist", exit_code=1)
