"""``pst server`` and ``pst worker``: run the installed ``postgit-server`` / ``postgit-worker`` in this process."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import NoReturn

import typer

from postgit_cli import install_hints
from postgit_cli.errors import CliError

PASSTHROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}
"""Context settings of a command whose extra arguments go to the program it runs."""


def server(ctx: typer.Context) -> None:
    """Run the API server (postgit-server); extra arguments are passed on (pst server -- --help)."""
    exec_script("postgit-server", install_hints.SERVER, ctx.args)


def worker(ctx: typer.Context) -> None:
    """Run a worker (postgit-worker); extra arguments are passed on (pst worker -- --help)."""
    exec_script("postgit-worker", install_hints.WORKER, ctx.args)


def find_script(name: str) -> str | None:
    """The console script ``name`` installed beside this Python (its virtual environment), else on PATH."""
    for directory in (Path(sys.executable).parent, Path(sys.argv[0]).resolve().parent):
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


def exec_script(name: str, install_hint: str, args: list[str]) -> NoReturn:
    """Replace this process with the script ``name``, or fail saying which package provides it."""
    path = find_script(name)
    if path is None:
        raise CliError(f"{name} is not installed: {install_hint}")
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp(path, [name, *args])  # noqa: S606 - runs the installed script, no shell involved
    except OSError as exc:
        raise CliError(f"cannot run {path}: {exc.strerror or exc}") from None
