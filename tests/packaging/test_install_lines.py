"""Every install line of the README's "Installing from a checkout", run in a fresh virtual environment.

The lines that bring the SDK, and the README's plugin recipe, are installed and used. The others are resolved with
``--dry-run`` in a fresh environment: what fails in such a line is finding its packages, and a real install of the
server's or the embedded PostgreSQL's dependencies would cost minutes; the server, the worker and ``./postgit-cli``
alone are installed for real by other tests. The lines of each kind (from the folders, from ``dist``) are resolved
together, in one ``pip install --dry-run`` naming every package any of them names: a folder or a package a line gets
wrong fails that run, and pip builds each folder once instead of once per line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from postgit_cli import install_hints
from tests.packaging.conftest import README, ROOT, fresh_venv, install_lines

PIP_LINES = [argv for argv in install_lines() if argv[:2] == ["pip", "install"]]
SDK_LINES = [argv for argv in PIP_LINES if any("[sdk]" in arg for arg in argv)]
OTHER_LINES = [argv for argv in PIP_LINES if argv not in SDK_LINES]
LOAD_A_PY_WORKFLOW = """
from pathlib import Path
from postgit_cli.workflow_file import load_workflow_file
definition = load_workflow_file(Path("examples/demo.py"))
assert definition["type"] == "Sequence", definition
print("loaded", definition["id"])
"""


def where(argv: list[str], wheels: Path) -> Path:
    """Lines with ``--find-links dist`` run beside the built ``dist/``; the others at the top of the checkout."""
    return wheels if "--find-links" in argv else ROOT


def line_id(argv: list[str]) -> str:
    return " ".join(argv[2:])


def test_the_readme_documents_both_ways_for_each_kind_of_host():
    assert ["pip", "install", "./postgit-cli"] in PIP_LINES
    assert len(SDK_LINES) == 2, SDK_LINES
    assert any("--find-links" in argv for argv in OTHER_LINES) and any("--find-links" not in a for a in OTHER_LINES)


def test_every_install_line_the_cli_suggests_is_documented():
    documented = {" ".join(argv) for argv in PIP_LINES}
    for hint in (install_hints.SDK, install_hints.WORKER, install_hints.SERVER, install_hints.DEV):
        for command in hint.replace(" in a Postgit checkout, or ", "|").split(" with the wheels")[0].split("|"):
            assert " ".join(command.replace("'", "").split()) in {d.replace("'", "") for d in documented}, command
        assert install_hints.BUILD_WHEELS in README


@pytest.mark.timeout(900)
@pytest.mark.parametrize("argv", SDK_LINES, ids=line_id)
def test_an_sdk_line_installs_a_client_that_deploys_py_workflows(argv, wheels, tmp_path):
    venv = fresh_venv(tmp_path)
    installed = venv.run(*argv, cwd=where(argv, wheels))
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert venv.run("pst", "--version", cwd=tmp_path).returncode == 0
    loaded = venv.run("python", "-c", LOAD_A_PY_WORKFLOW, cwd=ROOT)
    assert loaded.returncode == 0 and "loaded root" in loaded.stdout, loaded.stderr
    unwanted = venv.run("python", "-c", "import postgit_server", cwd=tmp_path)
    assert unwanted.returncode != 0, "the SDK line must not bring the server"


def together(lines: list[list[str]]) -> list[str]:
    """One ``pip install`` naming, once each, every option and package that any of ``lines`` names."""
    options = [arg for argv in lines for arg in argv[2:] if arg.startswith("-")]
    options = [arg for n, arg in enumerate(options) if arg not in options[:n]]
    if "--find-links" in options:
        options = ["--find-links", "dist"]
    packages = [arg for argv in lines for arg in argv[2:] if not arg.startswith("-") and arg != "dist"]
    return ["pip", "install", *options, *dict.fromkeys(packages)]


KINDS = {
    "from-folders": together([argv for argv in OTHER_LINES if "--find-links" not in argv]),
    "from-dist": together([argv for argv in OTHER_LINES if "--find-links" in argv]),
}


def test_resolving_the_lines_together_names_every_line_s_packages():
    for argv in OTHER_LINES:
        kind = KINDS["from-dist" if "--find-links" in argv else "from-folders"]
        assert set(argv[2:]) - {"--find-links", "dist"} <= set(kind), (argv, kind)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("argv", KINDS.values(), ids=KINDS.keys())
def test_the_other_lines_resolve_in_a_fresh_environment(argv, wheels, tmp_path):
    resolved = fresh_venv(tmp_path).run(*argv, "--dry-run", cwd=where(argv, wheels))
    assert resolved.returncode == 0, resolved.stdout + resolved.stderr
    assert "Would install" in resolved.stdout, resolved.stdout
    wanted = {arg.split("[")[0].lstrip("./").split("/")[-1] for arg in argv[2:] if not arg.startswith("-")}
    wanted.discard("dist")
    for package in wanted:
        assert f"{package}-0" in resolved.stdout.replace("_", "-"), (package, resolved.stdout)
