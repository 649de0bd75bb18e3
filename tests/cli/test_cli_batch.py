"""``pst run WORKFLOW --input @FILE.jsonl``: one instance per line, through the batch start endpoint."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.cli.conftest import Pst, ServerProcess, assert_error, shout, write_json

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def deploy_greet(pst: Pst, tmp_path: Path) -> None:
    path = write_json(tmp_path, "greet.json", {"root": shout(text="{{ input.name }}"), "inputSchema": SCHEMA})
    pst.ok("deploy", str(path))


def instances(server: ServerProcess) -> list[dict]:
    return httpx.get(f"{server.url}/instances", params={"limit": 500}, timeout=10).json()["items"]


def test_a_jsonl_file_starts_one_instance_per_line(pst: Pst, server: ServerProcess, tmp_path: Path):
    deploy_greet(pst, tmp_path)
    lines = [json.dumps({"name": f"n{n}"}) for n in range(6)]
    lines[2] = ""  # blank lines are skipped, and still counted
    lines[4] = json.dumps({"name": 4})  # fails the input schema
    path = tmp_path / "people.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = pst("run", "greet", "--input", f"@{path}")
    assert result.returncode == 1, result.describe()
    assert result.stdout.strip() == f"{path}: 5 lines: 4 started, 1 failed"
    assert result.stderr.strip() == "line 5: input.name: 4 is not of type 'string' (the workflow's input schema)"
    started = instances(server)
    assert sorted(row["workflow"] for row in started) == ["greet"] * 4

    as_json = pst("run", "greet", "--input", f"@{path}", "--json")
    assert as_json.returncode == 1, as_json.describe()
    report = json.loads(as_json.stdout)
    assert (report["started"], report["existing"], report["failed"]) == (4, 0, 1)
    assert [result["line"] for result in report["results"]] == [1, 2, 4, 5, 6]
    assert report["results"][3]["error"].startswith("input.name: 4 is not of type")
    assert all(result["id"] and result["status"] == "pending" for i, result in enumerate(report["results"]) if i != 3)


def test_a_bad_line_is_reported_before_anything_is_sent(pst: Pst, server: ServerProcess, tmp_path: Path):
    deploy_greet(pst, tmp_path)
    path = tmp_path / "broken.jsonl"
    path.write_text('{"name": "a"}\n{"name": "b"\n[1, 2]\n{"name": "c"}\n', encoding="utf-8")
    result = pst("run", "greet", "--input", f"@{path}")
    line = assert_error(result, "2 bad lines, nothing was started", exit_code=2)
    assert "line 2: not valid JSON" in line and "line 3: not a JSON object" in line
    assert instances(server) == []

    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    assert_error(pst("run", "greet", "--input", f"@{empty}"), "no inputs in it", exit_code=2)
    assert_error(pst("run", "greet", "--input", f"@{tmp_path / 'missing.jsonl'}"), "no such file", exit_code=2)
    assert_error(pst("run", "greet", "--input", f"@{path}", "--watch"), "--watch", exit_code=2)


def test_a_large_file_is_sent_in_batches_and_keys_make_a_rerun_start_nothing(
    pst: Pst, server: ServerProcess, tmp_path: Path
):
    deploy_greet(pst, tmp_path)
    path = tmp_path / "many.jsonl"
    path.write_text("".join(json.dumps({"name": f"n{n}"}) + "\n" for n in range(2_345)), encoding="utf-8")

    first = pst.ok("run", "greet", "--input", f"@{path}", "--idempotency-key", "import-1", "--json").json()
    assert (first["started"], first["existing"], first["failed"]) == (2_345, 0, 0)
    ids = [result["id"] for result in first["results"]]
    assert len(set(ids)) == 2_345

    again = pst.ok("run", "greet", "--input", f"@{path}", "--idempotency-key", "import-1")
    assert (
        again.stdout.strip()
        == f"{path}: 2,345 lines: 0 started, 2,345 already started (idempotency key used before), 0 failed"
    )
    shown = httpx.get(f"{server.url}/instances/{ids[1000]}", timeout=10).json()
    assert shown["state"] == {"input": {"name": "n1000"}}


def test_an_unknown_workflow_is_one_error_line(pst: Pst, tmp_path: Path):
    path = tmp_path / "one.jsonl"
    path.write_text('{"name": "a"}\n', encoding="utf-8")
    assert_error(pst("run", "nope", "--input", f"@{path}"), "workflow 'nope' does not exist", exit_code=1)
