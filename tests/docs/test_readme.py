"""The README against the code: commands, environment variables, the plugin hook, and CI's test command."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import typer

from postgit import hookspecs
from postgit_cli.main import app

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SOURCES = [
    path
    for folder in ("postgit-core", "postgit-server", "postgit-cli", "plugins")
    for path in (ROOT / folder).rglob("*.py")
]


def setup_commands() -> list[str]:
    block = README.split("## Start here", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_the_readme_opens_with_two_setup_commands_and_ci_runs_the_test_one():
    demo, tests = setup_commands()
    assert demo.endswith("examples/run_demo.py")
    assert tests.endswith("uv run pytest")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert tests in ci, ".ci/run must run the README's test command as written"


def test_every_pst_command_in_the_readme_exists():
    command = typer.main.get_command(app)
    for line in re.findall(r"^pst ([a-z][a-z ]*?)(?=\s{2,}|\s+[A-Z\[-]|$)", README, re.MULTILINE):
        group = command
        for word in line.split():
            assert word in group.commands, f"'pst {line}' is in the README but not in the CLI"
            group = group.commands[word]


def test_every_environment_variable_in_the_readme_is_read_somewhere_and_vice_versa():
    table = README.split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Z_<>]+)`", table, re.MULTILINE))
    code = "\n".join(path.read_text(encoding="utf-8") for path in SOURCES)
    for name in documented:
        prefix = name.split("<", 1)[0]
        assert prefix in code, f"{name} is documented but no code reads it"
    read = set(re.findall(r"\b((?:POSTGIT|DATABASE|DC_API)_[A-Z_]*[A-Z])\b", code)) | {"PORT"}
    undocumented = {name for name in read if not any(doc.split("<", 1)[0] == name or doc == name for doc in documented)}
    undocumented = {name for name in undocumented if not name.startswith("POSTGIT_SECRET")}  # POSTGIT_SECRET_<NAME>
    assert not undocumented, f"read by the code but not in the README's table: {sorted(undocumented)}"


def test_the_plugin_hook_is_documented_with_its_signature():
    section = README.split("## Writing a node plugin", 1)[1].split("\n## ", 1)[0]
    for name, hook in inspect.getmembers(hookspecs, inspect.isfunction):
        if name.startswith("postgit_"):
            signature = f"{name}{inspect.signature(hook)}".split(" ->")[0]
            assert f"{signature}" in section, f"the hook {signature} is not in 'Writing a node plugin'"


def test_the_limits_table_matches_the_code():
    from postgit import definition, service, starts, validation
    from postgit.engine import driver, steps

    table = README.split("### Limits", 1)[1].split("\n#", 1)[0]
    for megabytes, value in [
        (1, validation.MAX_DEFINITION_BYTES),
        (1, starts.MAX_INPUT_BYTES),
        (1, steps.MAX_OUTPUT_BYTES),
        (10, driver.MAX_STATE_BYTES),
        (32, service.MAX_BATCH_INPUT_BYTES),
    ]:
        assert value == megabytes * 1_000_000
    for number in (
        validation.MAX_NODES,
        validation.MAX_DEPTH,
        validation.MAX_ID_LENGTH,
        starts.MAX_IDEMPOTENCY_KEY_LENGTH,
        service.MAX_BATCH_STARTS,
        definition.MAX_FOREACH_ITEMS,
        validation.MAX_CONCURRENCY,
    ):
        assert f"{number:,}" in table, f"{number} is a limit in the code but not in the README's table"
