"""``pst wf check FILE NAME``: replay a new definition over the recorded runs before deploying it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.cli.conftest import Pst, assert_error, sequence, shout, write_json
from tests.cli.test_cli_commands import wait_status


def flow(condition: str = "input.vip", notify: str = "{{ greeting.text }}") -> dict[str, Any]:
    branch: dict[str, Any] = {
        "id": "vip",
        "type": "If",
        "condition": condition,
        "then": shout("gold", text="gold"),
        "else": shout("plain", text="plain"),
    }
    return sequence(
        shout("greet", text="{{ input.name }}", assignTo="$.greeting"), branch, shout("notify", text=notify)
    )


def test_wf_check_reports_each_instance_and_exits_1_when_one_diverges(pst: Pst, tmp_path: Path, worker):
    pst.ok("deploy", str(write_json(tmp_path, "greet.json", flow())))
    ada = pst.ok("run", "greet", "--input", '{"name": "ada", "vip": true}').stdout.strip()
    bob = pst.ok("run", "greet", "--input", '{"name": "bob", "vip": false}').stdout.strip()
    wait_status(pst, ada, "completed")
    wait_status(pst, bob, "completed")

    same = pst.ok("wf", "check", str(write_json(tmp_path, "same.json", flow())), "greet")
    assert "same.json replays all 2 instances of greet version 1 the same" in same.stdout

    changed = write_json(tmp_path, "changed.json", flow(condition="input.vip and input.name == 'bob'"))
    result = pst("wf", "check", str(changed), "greet")
    assert result.returncode == 1, result.describe()
    lines = result.stdout.splitlines()
    assert any(line.startswith("diverges") and ada in line and "node 'vip'" in line for line in lines), result.stdout
    assert any(line.startswith("same") and bob in line for line in lines), result.stdout
    assert "1 of 2 instances of greet version 1 would diverge under changed.json" in result.stdout

    report = pst("wf", "check", str(changed), "greet", "--json", "--instances", "1")
    assert report.returncode == 0, report.describe()  # only the latest instance, bob's, which does not diverge
    parsed = json.loads(report.stdout)
    assert parsed["checked"] == 1 and parsed["diverged"] == 0 and parsed["instances"][0]["id"] == bob
    assert set(parsed) == {"workflow", "version", "checked", "diverged", "instances"}


def test_wf_check_refuses_what_it_cannot_check_with_one_line(pst: Pst, tmp_path: Path):
    good = write_json(tmp_path, "good.json", flow())
    assert_error(pst("wf", "check", str(good), "nope"), "workflow 'nope'")
    pst.ok("deploy", str(good), "greet")
    empty = pst.ok("wf", "check", str(good), "greet")
    assert "no finished instances of greet version 1" in empty.stderr
    broken = write_json(tmp_path, "broken.json", sequence({"id": "greet", "type": "Shout", "params": {}}))
    assert_error(pst("wf", "check", str(broken), "greet"), "node 'greet'", "params.text")
    assert_error(pst("wf", "check", str(tmp_path / "missing.json"), "greet"), "no such file", exit_code=2)
    assert_error(pst("wf", "check", str(good), "greet", "--instances", "0"), "--instances")
