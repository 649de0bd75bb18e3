"""``pip install ./postgit-cli`` alone, in a fresh virtual environment, gives a working client without the engine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import Pst, ServerProcess, assert_error, sequence, shout, write_json

REPO = Path(__file__).resolve().parents[2]


def isolated_env(venv: Path) -> dict[str, str]:
    """The environment of a user who only has this venv: no workspace venv on PATH, no Python path tricks."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), "/usr/local/bin", "/usr/bin", "/bin"])
    return env


@pytest.fixture(scope="module")
def cli_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with ``postgit-cli`` installed from its folder, nothing else from the repo."""
    venv = tmp_path_factory.mktemp("cli-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    installed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(REPO / "postgit-cli")],
        env=isolated_env(venv),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return venv


@pytest.mark.packaging
@pytest.mark.timeout(300)
def test_the_cli_installs_alone_and_works(cli_venv: Path, server: ServerProcess, worker, tmp_path: Path):
    env = isolated_env(cli_venv)
    python = str(cli_venv / "bin" / "python")
    for module in ("psycopg", "postgit", "postgit_server"):
        probe = subprocess.run([python, "-c", f"import {module}"], env=env, capture_output=True, text=True)
        assert probe.returncode != 0, f"{module} is importable in the CLI's venv"
        assert "ModuleNotFoundError" in probe.stderr

    pst = Pst(server.url, program=str(cli_venv / "bin" / "pst"))
    help_text = pst.ok("--help", PATH=env["PATH"]).stdout
    assert "deploy" in help_text
    assert Pst(server.url, program=str(cli_venv / "bin" / "postgit")).ok("--version", PATH=env["PATH"]).stdout

    flow_py = tmp_path / "flow.py"
    flow_py.write_text("from postgit import Sequence\n\ndef workflow():\n    return Sequence(id='r', children=[])\n")
    assert_error(
        pst("deploy", str(flow_py), PATH=env["PATH"]),
        f"{flow_py} needs the Postgit SDK: pip install './postgit-cli[sdk]' ./postgit-core in a Postgit checkout, "
        "or pip install --find-links dist 'postgit-cli[sdk]' with the wheels built there by "
        "uv build --all-packages --wheel --out-dir dist",
    )
    assert_error(
        pst("worker", PATH=env["PATH"]),
        "postgit-worker is not installed: pip install ./postgit-core ./plugins/postgit-builtins in a Postgit checkout",
        exit_code=1,
    )
    assert_error(
        pst("server", PATH=env["PATH"]),
        "postgit-server is not installed: pip install ./postgit-server ./postgit-core ./plugins/postgit-builtins",
    )

    # Everything that is HTTP works against a real server and worker, and .json definitions deploy.
    path = write_json(tmp_path, "standalone.json", sequence(shout("loud", "alone", assignTo="$.out")))
    assert pst.ok("deploy", str(path), "--json", PATH=env["PATH"]).json()["name"] == "standalone"
    result = pst("run", "standalone", "--watch", PATH=env["PATH"])
    assert result.returncode == 0, result.describe()
    assert "loud  completed" in result.stdout
    assert "ALONE!" in result.stdout
    assert "Shout" in {row["name"] for row in pst.ok("plugins", "ls", "--json", PATH=env["PATH"]).json()}
