"""Fixtures for packaging tests: the workspace's wheels, built once per session, and fresh virtual environments."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def install_lines() -> list[list[str]]:
    """The commands of the README's "Installing from a checkout" block, each split as a shell would."""
    section = README.split("### Installing from a checkout", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    return [argv for argv in (shlex.split(line, comments=True) for line in block.splitlines()) if argv]


def isolated_env(venv: Path) -> dict[str, str]:
    """The environment of a user who only has this venv: no workspace venv on PATH, no Python path tricks."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), "/usr/local/bin", "/usr/bin", "/bin"])
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@dataclass(frozen=True)
class Venv:
    """A fresh virtual environment."""

    path: Path

    @property
    def python(self) -> str:
        return str(self.path / "bin" / "python")

    def run(self, *args: str, cwd: Path, timeout: float = 480) -> subprocess.CompletedProcess[str]:
        """Run a command of this venv (``pip``, ``python``, ``pst``) as its user would, with its own PATH."""
        program, *rest = args
        argv = [self.python, "-m", "pip", *rest] if program == "pip" else [str(self.path / "bin" / program), *rest]
        return subprocess.run(
            argv, cwd=cwd, env=isolated_env(self.path), capture_output=True, text=True, timeout=timeout, check=False
        )


def fresh_venv(parent: Path) -> Venv:
    path = parent / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=180)
    return Venv(path)


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding ``dist/``: every workspace package's wheel, built by the README's own ``uv build`` line.

    Install lines that say ``--find-links dist`` run in this folder, as written.
    """
    [build] = [argv for argv in install_lines() if argv[:2] == ["uv", "build"]]
    folder = tmp_path_factory.mktemp("wheels")
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert uv is not None, "uv is not installed beside this Python"
    out = build.index("--out-dir") + 1
    argv = [uv, *build[1:out], str(folder / build[out]), *build[out + 1 :]]
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    built = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=480, check=False)
    assert built.returncode == 0, built.stdout + built.stderr
    return folder
