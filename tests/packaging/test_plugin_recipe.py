"""The README's plugin recipe, copied from its text into a folder, installs and provides its node type."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.packaging.conftest import README, fresh_venv

CHECK = """
import asyncio

from postgit.plugins import load_registry
from postgit.validation import validate_definition
from postgit.errors import DefinitionError

registry = load_registry()
entry = registry["Shout"]
print("provenance", entry.provenance.package, entry.provenance.version)
params = entry.node_type.params(text="hi", exclamations=2)
print("output", asyncio.run(entry.node_type.handler(None, params)))
try:
    validate_definition({"id": "loud", "type": "Shout", "params": {"text": "hi", "exclamation": 3}}, registry)
except DefinitionError as exc:
    print("refused", exc)
"""


def recipe_files() -> dict[str, str]:
    """Each code block of "Writing a node plugin" whose first line is a comment naming a file: {file: text}."""
    section = README.split("## Writing a node plugin", 1)[1].split("\n## ", 1)[0]
    files = {}
    for block in re.findall(r"```(?:toml|python)\n(.*?)```", section, re.DOTALL):
        first = block.partition("\n")[0]
        name = re.fullmatch(r"# (\S+\.(?:toml|py))", first.strip())
        if name:
            files[name.group(1)] = block
    return files


def test_the_recipe_names_its_two_files():
    assert set(recipe_files()) == {"pyproject.toml", "postgit_example_plugin/__init__.py"}


@pytest.mark.timeout(900)
def test_the_readme_recipe_installs_as_written_and_provides_its_node_type(wheels: Path, tmp_path: Path):
    plugin = tmp_path / "my-plugin"
    for name, text in recipe_files().items():
        (plugin / name).parent.mkdir(parents=True, exist_ok=True)
        (plugin / name).write_text(text, encoding="utf-8")
    venv = fresh_venv(tmp_path)
    # the plugin from its folder; postgit-core, its one Postgit dependency, from the workspace's wheels
    installed = venv.run("pip", "install", "--find-links", str(wheels / "dist"), str(plugin), cwd=tmp_path)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    checked = venv.run("python", "-c", CHECK, cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "provenance postgit-example-plugin 0.1.0" in checked.stdout
    assert "output {'text': 'HI!!'}" in checked.stdout
    assert "field 'params.exclamation'" in checked.stdout and "did you mean 'exclamations'?" in checked.stdout
