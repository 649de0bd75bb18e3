"""The README's demo command, run as a new user would: in a fresh clone, with no DATABASE_URL and no PostgreSQL on
the PATH. It installs everything (a virtual environment, uv, the workspace), starts the embedded PostgreSQL, the
server and a worker, deploys the demo and watches it complete."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.docs.test_readme import setup_commands

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_PROGRAMS = ("postgres", "pg_ctl", "initdb")


def path_without_postgres() -> str:
    keep = []
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if folder and not any((Path(folder) / program).exists() for program in POSTGRES_PROGRAMS):
            keep.append(folder)
    return os.pathsep.join(keep)


@pytest.mark.timeout(900)
def test_the_readme_demo_command_completes_in_a_fresh_clone(tmp_path):
    demo = setup_commands()[0]
    clone = tmp_path / "postgit"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("POSTGIT_", "VIRTUAL_ENV", "UV_", "PYTEST"))
        and key not in ("DATABASE_URL", "DC_API_URL")
    }
    env["PATH"] = path_without_postgres()
    result = subprocess.run(
        ["bash", "-c", demo], cwd=clone, env=env, capture_output=True, text=True, timeout=880, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "instance completed" in output and "Workflow Complete" in output, output[-4000:]
    assert (clone / ".postgit" / "pg" / "pgdata" / "PG_VERSION").read_text().strip() == "18"
