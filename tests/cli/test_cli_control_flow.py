"""The CLI for control flow: pst event send, the tree of runs in pst status, loop progress in run --watch."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Pst, assert_error, shout, write_json
from tests.support.waiting import wait_for_sync

APPROVAL = {
    "id": "root",
    "type": "Sequence",
    "children": [
        {"id": "approve", "type": "WaitForEvent", "params": {"event": "approval"}, "assignTo": "$.approval"},
        shout("after", "{{ approval.data.by }}", assignTo="$.after"),
    ],
}


def status(pst: Pst, instance_id: str) -> dict:
    return pst.ok("status", instance_id, "--json").json()


def test_event_send_to_an_instance_and_by_key(pst: Pst, worker, tmp_path: Path):
    pst.ok("deploy", str(write_json(tmp_path, "approval.json", APPROVAL)))
    first = pst.ok("run", "approval").stdout.strip()
    wait_for_sync(lambda: status(pst, first)["status"] == "waiting", timeout=30, what="the instance to wait")
    text = pst.ok("status", first).stdout
    assert "approve  WaitForEvent  waiting" in text and "waits for event 'approval'" in text

    sent = pst.ok("event", "send", first, "approval", "--data", '{"by": "ada"}', "--event-id", "e-1")
    assert sent.stdout.startswith("Sent event ")
    again = pst.ok("event", "send", first, "approval", "--data", '{"by": "eve"}', "--event-id", "e-1", "--json")
    assert again.json()["duplicate"] is True
    wait_for_sync(lambda: status(pst, first)["status"] == "completed", timeout=30, what="the instance to complete")
    assert status(pst, first)["state"]["after"] == {"text": "ADA!"}

    keyed = {**APPROVAL["children"][0], "params": {"event": "approval", "key": "{{ input.order }}"}}
    pst.ok("deploy", str(write_json(tmp_path, "keyed.json", keyed)))
    second = pst.ok("run", "keyed", "--input", '{"order": "o-7"}').stdout.strip()
    wait_for_sync(lambda: status(pst, second)["status"] == "waiting", timeout=30, what="the keyed instance to wait")
    woke = pst.ok("event", "send", "--key", "o-7", "approval", "--data", "5")
    assert "woke 1 waiting instance" in woke.stdout
    wait_for_sync(lambda: status(pst, second)["status"] == "completed", timeout=30, what="the keyed one to complete")


def test_event_send_mistakes_are_one_line_errors(pst: Pst, tmp_path: Path):
    pst.ok("deploy", str(write_json(tmp_path, "approval.json", APPROVAL)))
    instance_id = pst.ok("run", "approval").stdout.strip()
    assert_error(pst("event", "send", "approval"), "give INSTANCE_ID and NAME", exit_code=2)
    assert_error(pst("event", "send", "--key", "k", instance_id, "approval"), "with --key", exit_code=2)
    assert_error(pst("event", "send", instance_id, "approval", "--data", "{nope"), "--data is not valid JSON")
    assert_error(pst("event", "send", instance_id, "bad name"), "body.name")
    assert_error(pst("event", "send", "01a23782-c714-7fd0-9fae-50e66f2ca905", "approval"), "does not exist")


def test_status_shows_the_tree_branches_and_children(pst: Pst, worker, tmp_path: Path):
    child = shout("inner")
    parent = {
        "id": "root",
        "type": "Parallel",
        "branches": {
            "call": {"id": "call", "type": "SubWorkflow", "params": {"workflow": "child"}},
            "hold": {"id": "hold", "type": "WaitForEvent", "params": {"event": "go"}},
            "loop": {
                "id": "each",
                "type": "ForEach",
                "items": [1, 2, 3],
                "body": shout("echo", "{{ item }}"),
            },
        },
    }
    pst.ok("deploy", str(write_json(tmp_path, "child.json", child)))
    pst.ok("deploy", str(write_json(tmp_path, "parent.json", parent)))
    instance_id = pst.ok("run", "parent").stdout.strip()
    wait_for_sync(lambda: status(pst, instance_id)["status"] == "waiting", timeout=30, what="the parent to wait")
    text = pst.ok("status", instance_id).stdout
    for fragment in (
        "Runs",
        "root  Parallel  running",
        "call: call  SubWorkflow  completed",
        "hold: hold  WaitForEvent  waiting",
        "loop: each  ForEach  completed  items 3/3 completed, 0 failed, 0 running",
        "Active branches",
        "Child instances",
    ):
        assert fragment in text, f"{fragment!r} not in:\n{text}"
    [child_row] = status(pst, instance_id)["children"]
    assert "(run call)" in pst.ok("status", child_row["id"]).stdout


def test_watch_summarises_a_big_loop(pst: Pst, worker, tmp_path: Path):
    loop = {"id": "each", "type": "ForEach", "items": "{{ input.xs }}", "concurrency": 50, "body": shout("echo", "x")}
    pst.ok("deploy", str(write_json(tmp_path, "loop.json", loop)))
    result = pst.ok("run", "loop", "--input", '{"xs": ' + str(list(range(1000))) + "}", "--watch", timeout=120)
    lines = result.stdout.split("\nInstance ", 1)[0].splitlines()  # the events, before the final state
    assert any("echo  items: 1000 completed, 0 failed, 0 running" in line for line in lines), result.stdout
    assert len(lines) < 100, f"{len(lines)} lines for 1,000 items"
