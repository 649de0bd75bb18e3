"""The CLI on its own: help, version, usage errors, workflow files, an unreachable server, pst server/worker."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from postgit_cli.main import app
from tests.cli.conftest import Pst, assert_error, shout, write_json
from tests.support.ports import free_port

COMMANDS = [
    [],
    ["deploy"],
    ["run"],
    ["status"],
    ["wf"],
    ["wf", "ls"],
    ["i"],
    ["i", "ls"],
    ["i", "cancel"],
    ["i", "pause"],
    ["i", "resume"],
    ["i", "retry"],
    ["i", "rm"],
    ["plugins"],
    ["plugins", "ls"],
    ["workers"],
    ["workers", "ls"],
    ["outbox"],
    ["outbox", "ls"],
    ["outbox", "send"],
    ["event"],
    ["event", "send"],
    ["schedule"],
    ["schedule", "create"],
    ["schedule", "ls"],
    ["schedule", "show"],
    ["schedule", "pause"],
    ["schedule", "resume"],
    ["schedule", "trigger"],
    ["schedule", "backfill"],
    ["schedule", "rm"],
    ["server"],
    ["worker"],
    ["dev"],
]


@pytest.fixture
def offline() -> Pst:
    """``pst`` pointed at a loopback port where nothing listens."""
    return Pst(f"http://127.0.0.1:{free_port()}")


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "pst")
def test_every_command_has_help(offline: Pst, command: list[str]):
    result = offline.ok(*command, "--help")
    assert "Usage:" in result.stdout
    assert result.stderr == ""


def test_the_help_lists_the_contract_commands(offline: Pst):
    text = offline.ok("--help").stdout
    for name in ("deploy", "run", "status", "wf", "i", "plugins", "outbox", "server", "worker"):
        assert f" {name} " in text, name


def test_every_registered_command_is_tested_for_help():
    group = typer.main.get_command(app)
    names = {(name,) for name in group.commands}  # type: ignore[attr-defined]
    tested = {tuple(command[:1]) for command in COMMANDS if command}
    assert names <= tested, f"add {sorted(names - tested)} to COMMANDS"


def test_version(offline: Pst):
    result = offline.ok("--version")
    assert result.stdout.strip() == "postgit-cli 0.1.0"


def test_postgit_is_the_same_program(offline: Pst):
    alias = Pst(offline.api_url, program=str(Path(offline.program).with_name("postgit")))
    assert alias.ok("--version").stdout == offline.ok("--version").stdout
    assert_error(alias("nosuch"), "No such command 'nosuch'", "postgit --help", exit_code=2)


def test_no_arguments_prints_help(offline: Pst):
    result = offline.ok()
    assert "Usage:" in result.stdout


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["nosuch"], ["No such command 'nosuch'", "pst --help"]),
        (["status"], ["Missing argument 'ID'", "pst status --help"]),
        (["i", "ls", "--status", "sleeping"], ["--status", "sleeping", "pst i ls --help"]),
        (["i", "ls", "--limit", "0"], ["--limit"]),
        (["wf", "ls", "--bogus"], ["--bogus"]),
        (["run"], ["Missing argument 'WORKFLOW'"]),
    ],
)
def test_usage_errors_are_one_line_with_exit_code_2(offline: Pst, args: list[str], fragments: list[str]):
    assert_error(offline(*args), *fragments, exit_code=2)


@pytest.mark.parametrize(
    "args",
    [
        ["wf", "ls"],
        ["i", "ls"],
        ["status", "00000000-0000-0000-0000-000000000000"],
        ["run", "flow"],
        ["run", "flow", "--watch"],
        ["i", "cancel", "00000000-0000-0000-0000-000000000000"],
        ["plugins", "ls", "--json"],
        ["workers", "ls"],
        ["outbox", "ls"],
    ],
    ids=" ".join,
)
def test_an_unreachable_server_is_named(offline: Pst, args: list[str]):
    assert_error(offline(*args), f"cannot reach the Postgit server at {offline.api_url}", "refused")


def test_deploy_to_an_unreachable_server(offline: Pst, tmp_path: Path):
    path = write_json(tmp_path, "flow.json", shout())
    assert_error(offline("deploy", str(path)), f"cannot reach the Postgit server at {offline.api_url}")


def test_the_default_server_url_is_localhost_3000(tmp_path: Path):
    result = Pst(None)("wf", "ls")
    if result.returncode != 0:  # nothing listens on port 3000 here (the usual case)
        assert_error(result, "http://localhost:3000")


def test_an_invalid_server_url_is_named(tmp_path: Path):
    assert_error(Pst("localhost:3000")("wf", "ls"), "localhost:3000")


@pytest.mark.parametrize(
    ("value", "fragments"),
    [
        ("{bad", ["--input is not valid JSON", "line 1 column 2"]),
        ("", ["--input is not valid JSON"]),
        ("@/nonexistent/input.json", ["--input @/nonexistent/input.json: no such file"]),
    ],
)
def test_bad_input_is_refused_before_any_request(offline: Pst, value: str, fragments: list[str]):
    assert_error(offline("run", "flow", "--input", value), *fragments, exit_code=2)


def test_bad_input_from_a_file(offline: Pst, tmp_path: Path):
    path = tmp_path / "input.json"
    path.write_text("[1, 2", encoding="utf-8")
    assert_error(offline("run", "flow", "--input", f"@{path}"), f"--input @{path} is not valid JSON", exit_code=2)


# -- workflow files --------------------------------------------------------------------------------------------


def test_deploy_a_missing_file(offline: Pst, tmp_path: Path):
    path = tmp_path / "missing.json"
    assert_error(offline("deploy", str(path)), f"{path}: no such file", exit_code=2)


def test_deploy_a_file_that_is_not_json(offline: Pst, tmp_path: Path):
    path = tmp_path / "broken.json"
    path.write_text('{"id": "root",', encoding="utf-8")
    assert_error(offline("deploy", str(path)), f"{path} is not valid JSON", exit_code=2)


def test_deploy_a_json_file_that_is_not_an_object(offline: Pst, tmp_path: Path):
    path = write_json(tmp_path, "list.json", [shout()])
    assert_error(offline("deploy", str(path)), str(path), "JSON object", exit_code=2)


def test_deploy_a_file_of_another_kind(offline: Pst, tmp_path: Path):
    path = tmp_path / "flow.yaml"
    path.write_text("id: root\n", encoding="utf-8")
    assert_error(offline("deploy", str(path)), str(path), ".py module with workflow() or a .json definition")


def test_deploy_a_python_file_that_does_not_import(offline: Pst, tmp_path: Path):
    path = tmp_path / "broken.py"
    path.write_text("from postgit import Sequence\n\ndef workflow(:\n    pass\n", encoding="utf-8")
    assert_error(offline("deploy", str(path)), str(path), "does not import", "SyntaxError")


def test_deploy_a_python_file_whose_import_fails(offline: Pst, tmp_path: Path):
    path = tmp_path / "needs.py"
    path.write_text("import no_such_module_anywhere\n\ndef workflow():\n    pass\n", encoding="utf-8")
    assert_error(offline("deploy", str(path)), str(path), "does not import", "no_such_module_anywhere")


def test_deploy_a_python_file_without_workflow(offline: Pst, tmp_path: Path):
    path = tmp_path / "empty.py"
    path.write_text("from postgit import Sequence\n\nflow = None\n", encoding="utf-8")
    assert_error(offline("deploy", str(path)), str(path), "has no workflow() function")


def test_deploy_a_python_file_whose_workflow_raises(offline: Pst, tmp_path: Path):
    path = tmp_path / "raises.py"
    path.write_text("def workflow():\n    raise RuntimeError('no flow today')\n", encoding="utf-8")
    assert_error(offline("deploy", str(path)), str(path), "RuntimeError", "no flow today")


def test_deploy_a_python_file_that_exits(offline: Pst, tmp_path: Path):
    path = tmp_path / "exits.py"
    path.write_text("import sys\nsys.exit(3)\n", encoding="utf-8")
    assert_error(offline("deploy", str(path)), str(path))


# -- pst server / pst worker -----------------------------------------------------------------------------------


def test_pst_worker_runs_postgit_worker_with_its_arguments(offline: Pst):
    result = offline.ok("worker", "--", "--help")
    assert "postgit-worker" in result.stdout
    assert "--concurrency" in result.stdout


def test_pst_server_runs_postgit_server_with_its_arguments(offline: Pst):
    result = offline.ok("server", "--", "--help")
    assert "postgit-server" in result.stdout
    assert "--log-level" in result.stdout


def test_pst_worker_passes_on_the_workers_own_error(offline: Pst):
    result = offline("worker", DATABASE_URL="")
    assert result.returncode != 0
    assert "DATABASE_URL is not set" in result.stderr


def test_json_output_is_only_json(offline: Pst, tmp_path: Path):
    # An error with --json still prints nothing on stdout, so a script never parses half an answer.
    result = offline("wf", "ls", "--json")
    assert result.stdout == ""
    assert_error(result, "cannot reach")


def test_every_command_in_the_readme_exists():
    readme = (Path(__file__).resolve().parents[2] / "postgit-cli" / "README.md").read_text(encoding="utf-8")
    commands = set()
    for line in readme.splitlines():
        if not line.startswith("pst "):
            continue
        words = []
        for word in line.split()[1:]:
            if word.startswith(("-", "[")) or word.isupper():
                break
            words.append(word)
        commands.add(tuple(words))
    assert {("deploy",), ("run",), ("status",), ("wf", "ls"), ("i", "ls"), ("i", "cancel")} <= commands
    root = typer.main.get_command(app)
    for words in commands:
        command = root
        for word in words:
            assert word in command.commands, f"pst {' '.join(words)} is in the README but not in the CLI"
            command = command.commands[word]
